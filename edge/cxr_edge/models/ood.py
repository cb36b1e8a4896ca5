"""Out-of-distribution score on the box: how unlike the training radiographs an image's stage 1 features are.

A Mahalanobis distance (Lee et al., 2018) in a PCA subspace of the penultimate-layer features: the features
are centred and projected on the top components, and the score is the distance to the nearest class mean
under the pooled within-class covariance. The statistics come from the training split through the int8
model itself (cxr_convert.ood), and the threshold from the validation split.
"""

from __future__ import annotations

import io

import numpy as np

_KEYS = ("mean", "components", "class_means", "precision")


class OODStats:
    def __init__(self, arrays: dict[str, np.ndarray], threshold: float):
        missing = [k for k in _KEYS if k not in arrays]
        if missing:
            raise ValueError(f"the out-of-distribution statistics lack {', '.join(missing)}")
        self.mean, self.components = arrays["mean"], arrays["components"]
        self.class_means, self.precision = arrays["class_means"], arrays["precision"]
        self.threshold = float(threshold)

    @classmethod
    def from_bytes(cls, data: bytes, threshold: float) -> "OODStats":
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:  # never unpickle bundle content
            return cls({k: npz[k].astype(np.float64) for k in npz.files}, threshold)

    def score(self, features: np.ndarray) -> np.ndarray:
        """(N,) distances to the nearest class mean; larger is less like the training images."""
        z = (np.asarray(features, np.float64) - self.mean) @ self.components
        diff = z[:, None, :] - self.class_means[None, :, :]
        d2 = np.einsum("nck,kl,ncl->nc", diff, self.precision, diff)
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(arrays[k], np.float32) for k in _KEYS})
    return buffer.getvalue()
