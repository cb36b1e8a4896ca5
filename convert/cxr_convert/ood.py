"""Fitting the box's out-of-distribution statistics, and images unlike chest radiographs to test them on."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from cxr_edge.models.interpreter import TFLiteModel, predict_in_batches
from cxr_edge.models.ood import OODStats

COMPONENTS = 32
SHRINKAGE = 1e-3  # of the mean variance, added to the covariance's diagonal: keeps it invertible
PERCENTILE = 99.5  # threshold: this percentile of validation scores (about 0.5% of radiographs referred)


def features(model_bytes: bytes, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    """The int8 stage 1 model's penultimate features, as the box computes them."""
    model = TFLiteModel(model_bytes)
    if len(model.outputs) < 2:
        raise ValueError("the stage 1 model has no features output")
    return predict_in_batches(model, pixels, batch)[1].reshape(len(pixels), -1)


def fit(train_features: np.ndarray, train_labels: np.ndarray, components: int = COMPONENTS) -> dict[str, np.ndarray]:
    """PCA subspace, class means and the pooled within-class precision matrix."""
    x = np.asarray(train_features, np.float64)
    mean = x.mean(axis=0)
    # Not standardised: scaling every unit to unit variance let near-dead units dominate, and on an
    # alexnet-edge run dropped inverted radiographs referred from 100% to 0%.
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(components, vt.shape[0])
    comps = vt[:k].T
    z = (x - mean) @ comps
    classes = np.unique(train_labels)
    class_means = np.stack([z[train_labels == c].mean(axis=0) for c in classes])
    within = z - class_means[np.searchsorted(classes, train_labels)]
    cov = within.T @ within / max(1, len(z) - len(classes))
    cov += SHRINKAGE * np.trace(cov) / k * np.eye(k) + 1e-12 * np.eye(k)
    return {"mean": mean, "components": comps, "class_means": class_means, "precision": np.linalg.inv(cov)}


def threshold(stats: dict[str, np.ndarray], val_features: np.ndarray) -> float:
    return float(np.percentile(OODStats(stats, 0.0).score(val_features), PERCENTILE))


# Images unlike chest radiographs, by kind: for parity.md's figures and the tests.
def unlike_images(radiographs: np.ndarray, n: int, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`n` images of each kind at (size, size) uint8; inverted and rotated ones are made from `radiographs`."""
    rng = np.random.default_rng(seed)
    kinds = {"noise": _noise, "photograph": _photograph, "document": _document, "other body part": _body_part}
    out = {kind: np.stack([make(rng, size) for _ in range(n)]) for kind, make in kinds.items()}
    picks = radiographs[rng.integers(0, len(radiographs), n)][..., 0]
    out["inverted radiograph"] = 255 - picks
    out["rotated radiograph"] = np.stack([np.rot90(p, k=int(rng.integers(1, 4))) for p in picks])
    return {kind: images[..., np.newaxis].astype(np.uint8) for kind, images in out.items()}


def _noise(rng, size):
    return rng.integers(0, 256, (size, size), dtype=np.uint8)


def _photograph(rng, size):
    """A scene: a sky-to-ground gradient with a few filled shapes and texture."""
    y = np.linspace(0, 1, size)[:, None]
    img = Image.fromarray(np.broadcast_to((rng.uniform(120, 230) * (1 - y) + rng.uniform(20, 120) * y), (size, size))
                          .astype(np.uint8), "L")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = rng.integers(0, size, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=int(rng.integers(0, 256)))
    return np.clip(np.asarray(img, np.float32) + rng.normal(0, 10, (size, size)), 0, 255).astype(np.uint8)


def _document(rng, size):
    """A white page with lines of dark text-like marks."""
    img = np.full((size, size), int(rng.uniform(215, 250)), np.uint8)
    line_h = max(3, size // 20)
    for top in range(size // 10, size - size // 10, line_h * 2):
        x = size // 10
        while x < size - size // 10:
            w = int(rng.integers(2, max(3, size // 12)))
            img[top:top + line_h, x:x + w] = int(rng.uniform(0, 60))
            x += w + int(rng.integers(1, max(2, size // 30)))
    return img


def _body_part(rng, size):
    """An X-ray of a limb: a dark field with one or two long bright bones in soft tissue."""
    img = Image.new("L", (size, size), int(rng.uniform(0, 30)))
    draw = ImageDraw.Draw(img)
    cx = size * rng.uniform(0.35, 0.65)
    draw.ellipse((cx - size * 0.3, -size * 0.2, cx + size * 0.3, size * 1.2), fill=int(rng.uniform(70, 110)))
    for offset in ([0.0] if rng.random() < 0.5 else [-0.08, 0.08]):
        x = cx + offset * size
        draw.rounded_rectangle((x - size * 0.05, -5, x + size * 0.05, size + 5), radius=size // 20,
                               fill=int(rng.uniform(180, 240)))
    return np.clip(np.asarray(img, np.float32) + rng.normal(0, 6, (size, size)), 0, 255).astype(np.uint8)
