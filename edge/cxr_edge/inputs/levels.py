"""High-bit-depth pixel values (DICOM, 16-bit PNG and TIFF) to the image contract's 8-bit gray levels.

Values are scaled linearly from a range to 0..255. The range is the image's own minimum..maximum; for data that
carries no window of its own (`tails` > 0), the range between the percentiles `tails` and 1 - `tails` when that
covers less than half the minimum..maximum: a burned-in marker or dead pixels at the detector's extremes no longer
squeeze the anatomy into a few gray levels, while an image whose tails are anatomy keeps its full range, the
contrast models were trained on.
"""

from __future__ import annotations

import numpy as np

LUT_CHUNK = 1 << 19  # pixels per step of the table lookup: bounds its index temporaries to 4 MB
# The percentile range replaces the full range when it covers less than this part of it: the outliers would leave
# the anatomy less than half the gray levels. The 0.5th..99.5th percentiles of the demo's 600 synthetic
# radiographs (text markers included) cover at least 73% of their range (at 2560 px with detector noise, 88 test
# images, 65%); anatomy in 0..1000 beside a marker at 4095, 24%. The percentile range for every image moved a
# bundle's outputs seven times more than quantization does (docs/benchmarks.md, "Image contract 4"): models trained on
# display images expect their full range.
OUTLIER_SPAN = 0.5
SAMPLE_ROWS = 512  # percentiles come from every k-th row, at least this many rows: every 5th of a 2560-px image


def to_uint8(values: np.ndarray, inverse: bool = False, overwrite: bool = False, tails: float = 0.0) -> np.ndarray:
    """Values scaled linearly from their range (the module's docstring) to 0..255, inverted first when asked.
    In place on one float64 array (a full-size radiograph is 52 MB of float64, and each temporary would be another):
    a copy, or `values` itself when it is float64 and the caller lets it be overwritten."""
    values = np.asarray(values, dtype=np.float64) if overwrite else np.array(values, dtype=np.float64)
    if inverse:
        np.subtract(values.max(), values, out=values)
    low, high = float(values.min()), float(values.max())
    if tails:
        sample = np.sort(_sample(values), axis=None)
        low, high = _tails_range(sample, tails, low, high)
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    values -= low
    values *= 255.0 / (high - low)
    return np.clip(np.rint(values, out=values), 0, 255, out=values).astype(np.uint8)


def integer_to_uint8(pixels: np.ndarray, transform=None, inverse: bool = False,
                     tails: float = 0.0) -> np.ndarray | None:
    """to_uint8(transform(pixels), inverse, tails=tails), bit for bit, through a lookup table: `transform`
    (elementwise: rescale, windowing, LUTs) and the float64 scaling run once per stored value between the image's
    minimum and maximum (at most 65,536 of them), not once per pixel, and no float64 copy of a full-size image
    (52 MB) is ever made. None when `pixels` are not integers spanning at most 16 bits: the caller takes the direct
    path."""
    if pixels.dtype.kind not in "ui" or pixels.size == 0:
        return None
    lo, hi = int(pixels.min()), int(pixels.max())
    if hi - lo >= 1 << 16:
        return None
    stored = np.arange(lo, hi + 1, dtype=np.int64).astype(pixels.dtype)
    values = np.array(stored if transform is None else transform(stored), dtype=np.float64)
    flat = pixels.reshape(-1)
    steps = np.diff(values)
    if (steps >= 0).all() or (steps <= 0).all():  # monotonic (rescale, windows): the extremes are lo's and hi's,
        present = np.zeros(len(stored), dtype=bool)  # which are in the image by definition
        present[[0, -1]] = True
    else:  # a non-monotonic LUT: which stored values occur decides the range
        present = _counts(flat, lo, len(stored)) > 0
    if inverse:
        np.subtract(values[present].max(), values, out=values)
    low, high = float(values[present].min()), float(values[present].max())
    if tails:
        counts = _counts(_sample(pixels).reshape(-1), lo, len(stored))
        low, high = _tails_range(_SortedCounts(values, counts), tails, low, high)
    if high <= low:
        return np.zeros(pixels.shape, dtype=np.uint8)
    values -= low  # the same operations, in the same order, as to_uint8's
    values *= 255.0 / (high - low)
    table = np.clip(np.rint(values), 0, 255).astype(np.uint8)  # values outside the range saturate
    out = np.empty(flat.size, dtype=np.uint8)
    for start in range(0, flat.size, LUT_CHUNK):
        out[start:start + LUT_CHUNK] = table[flat[start:start + LUT_CHUNK].astype(np.intp) - lo]
    return out.reshape(pixels.shape)


def _sample(pixels: np.ndarray) -> np.ndarray:
    """Every k-th row, at least SAMPLE_ROWS of them: percentiles need a fraction of a full-size image's 6.5 million
    pixels (a histogram of all of them takes about 10 ms of CPU on this project's 2-core machine, of every 5th row
    3-4 ms)."""
    return pixels[:: max(1, len(pixels) // SAMPLE_ROWS)]


def _counts(flat: np.ndarray, lo: int, length: int) -> np.ndarray:
    """How often each stored value lo..lo+length-1 occurs, in chunks (bincount's index copy stays small)."""
    counts = np.zeros(length, dtype=np.int64)
    for start in range(0, flat.size, LUT_CHUNK):
        counts += np.bincount(flat[start:start + LUT_CHUNK].astype(np.intp) - lo, minlength=length)
    return counts


class _SortedCounts:
    """The sorted multiset of `values` repeated `counts` times, indexable by rank, without expanding it."""

    def __init__(self, values: np.ndarray, counts: np.ndarray):
        order = np.argsort(values, kind="stable")
        self.values, self.ends = values[order], np.cumsum(counts[order])

    def __len__(self) -> int:
        return int(self.ends[-1])

    def __getitem__(self, rank: int) -> float:
        return float(self.values[np.searchsorted(self.ends, rank, side="right")])


def _tails_range(ordered, tails: float, low: float, high: float) -> tuple[float, float]:
    """The values at ranks k and n-1-k of the ordered sample (k = floor(n * tails): symmetric, so an inverted
    image's range is the inverted range) when they are less than OUTLIER_SPAN of the image's minimum..maximum
    `low`..`high` apart; otherwise `low`..`high`."""
    n = len(ordered)
    k = int(n * tails)
    a, b = float(ordered[k]), float(ordered[n - 1 - k])
    return (a, b) if 0 < b - a < OUTLIER_SPAN * (high - low) else (low, high)
