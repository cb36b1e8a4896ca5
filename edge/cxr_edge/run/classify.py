"""Classifying images on the box: the two int8 models in cascade, sanity checks, referral, and decode
threads that prepare the next images while the current ones run through the models."""

from __future__ import annotations

import collections
import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from cxr_edge.bundle.load import Bundle
from cxr_edge.bundle.selftest import trusted_models
from cxr_edge.inputs.images import ImageError, NotAnImage, read_radiograph, to_model_input
from cxr_edge.labels import LABELS
from cxr_edge.models.cascade import combine
from cxr_edge.models.interpreter import pad_batch
from cxr_edge.pictures.visuals import Visuals, display_image
from cxr_edge.reasons import Reason
from cxr_edge.run.result import Decoded, Result

# Sanity checks for "is this plausibly a chest radiograph at all": failing one refers the image.
MIN_SIDE = 128  # pixels; real radiographs are hundreds to thousands of pixels across
MAX_ASPECT = 2.0  # chest films are close to square (the Database's are 1:1; cassettes 14x17 in)
MIN_CONTRAST = 12  # gray levels between the 1st and 99th percentile; below that the image is near-constant
PREFETCH = 16  # images decoded ahead of inference: bounded, so memory does not grow with the folder
BATCH = 8  # images per invoke: large dense layers are read once per batch, not once per image


def sanity_problems(gray: np.ndarray) -> list[Reason]:
    """Reasons this image does not look like a chest radiograph the models were trained for."""
    height, width = gray.shape
    problems = []
    if min(height, width) < MIN_SIDE:
        problems.append(Reason("too_small", {"width": width, "height": height, "min_side": MIN_SIDE}))
    aspect = max(height, width) / max(1, min(height, width))
    if aspect > MAX_ASPECT:
        problems.append(Reason("aspect_ratio", {"aspect": round(aspect, 2)}))
    lo, hi = _percentiles(gray, 0.01, 0.99)
    if hi - lo < MIN_CONTRAST:
        problems.append(Reason("flat", {"spread": hi - lo}))
    return problems


def _percentiles(gray: np.ndarray, low: float, high: float) -> tuple[int, int]:
    """Two percentiles of a uint8 image from its histogram: O(n), unlike sorting in np.percentile. Pillow's
    histogram is 3x cheaper than np.bincount (which widens every pixel to int64), and this runs per image."""
    cumulative = np.cumsum(Image.fromarray(gray, mode="L").histogram())
    total = cumulative[-1]
    return int(np.searchsorted(cumulative, low * total)), int(np.searchsorted(cumulative, high * total))


class Classifier:
    """The bundle's two models in cascade, on interpreters that passed the bundle's known-answer self-test
    (cxr_edge.bundle.selftest raises SelfTestError when none does)."""

    def __init__(self, bundle: Bundle, threads: int | None = None, min_confidence: float | None = None,
                 site=None):
        """`site` (cxr_edge.site.site_file.Site): this clinic's threshold and floor; an explicit `min_confidence` wins."""
        self.bundle = bundle
        self.site = site
        models, self.selftest = trusted_models(bundle.models, bundle.known_answers(), threads,
                                               bundle.format_version)
        self.stage1, self.stage2 = models["stage1"], models["stage2"]
        self.size = bundle.input_size
        self.threshold = site.threshold if site else bundle.threshold
        default_floor = site.min_confidence if site else bundle.min_confidence
        self.min_confidence = default_floor if min_confidence is None else min_confidence
        self.ood = bundle.ood_stats()
        if self.stage1.input_size != self.size or self.stage2.input_size != self.size:
            raise ValueError(f"bundle input size {self.size} does not match its models' "
                             f"({self.stage1.input_size}, {self.stage2.input_size})")

    def predict(self, pixels: np.ndarray, with_ood: bool = False):
        """Label indices and (N, 4) probabilities for a batch of model inputs (N, size, size, 1) uint8;
        with `with_ood`, also the (N,) out-of-distribution scores (None without statistics)."""
        stage1 = self.stage1.predict(pixels)
        labels, probs = combine(stage1[0][:, 1], self.stage2.predict(pixels)[0], self.threshold)
        if not with_ood:
            return labels, probs
        scores = self.ood.score(stage1[1].reshape(len(pixels), -1)) if self.ood and len(stage1) > 1 else None
        return labels, probs, scores

    def predict_padded(self, pixels: np.ndarray, batch_size: int = BATCH, with_ood: bool = False):
        """predict() with the batch padded to `batch_size`, so the interpreter never re-allocates for a short one."""
        parts = self.predict(pad_batch(pixels, batch_size), with_ood)
        return tuple(None if part is None else part[:len(pixels)] for part in parts)

    def results(self, items: list[tuple[str, np.ndarray, list[Reason]]]) -> list[Result]:
        """Rows for decoded images, given as (relative path, model input, sanity problems)."""
        labels, probs, scores = self.predict_padded(np.stack([pixels for _, pixels, _ in items]), with_ood=True)
        scores = [None] * len(items) if scores is None else scores
        return [self._row(rel, int(index), p, problems, score)
                for (rel, _, problems), index, p, score in zip(items, labels, probs, scores)]

    def _row(self, rel_path: str, index: int, probs: np.ndarray, problems: list[Reason], ood_score=None) -> Result:
        """A classified image's row. Its reasons also explain a screen-positive label (below); `refer` is set by
        the reasons to refer alone."""
        label, referral = LABELS[index], list(problems)
        if ood_score is not None and ood_score > self.ood.threshold:
            referral.append(Reason("ood", {"score": round(float(ood_score), 4),
                                           "limit": round(float(self.ood.threshold), 4)}))
        # The cascade's label is not always the most probable class (a low stage 1 threshold favours
        # abnormal), so the confidence is that of the label given: the top probability when they agree.
        confidence = float(probs[index])
        if confidence < self.min_confidence:
            referral.append(Reason("low_confidence", {"label": label, "p": round(confidence, 6),
                                                      "floor": float(self.min_confidence)}))
        if not self.bundle.deployable:  # used with --allow-unverified
            referral.append(Reason("unverified"))
        reasons = (*self._screen_positive(label, probs), *referral)
        return Result(rel_path, label, tuple(float(p) for p in probs), bool(referral), reasons,
                      ood_score=None if ood_score is None else float(ood_score))

    def _screen_positive(self, label: str, probs: np.ndarray) -> list[Reason]:
        """Why a disease label stands over a longer "normal" bar: stage 1's screening threshold sits low, for
        sensitivity, so a probability of an abnormal finding well under one half already makes the image
        abnormal. Said whenever "normal" is still the most probable single class."""
        if label == LABELS[0] or probs[0] < max(probs[1:]):
            return []
        return [Reason("screen_positive", {"p_abnormal": round(1.0 - float(probs[0]), 6),
                                           "threshold": float(self.threshold), "site": self.site is not None})]


def decode(path: Path, size: int, keep_gray: bool = False) -> Decoded:
    """Everything but inference, so that it all overlaps inference (cxr_edge.run.result.Decoded); the display
    image (at most 1024 px a side) only when asked for."""
    try:
        gray, reasons, header = read_radiograph(path, size)
        display = display_image(gray) if keep_gray else None
        return Decoded(to_model_input(gray, size), [*reasons, *sanity_problems(gray)], display, None, "", header)
    except NotAnImage as exc:
        return Decoded(None, None, None, None, exc.kind)
    except ImageError as exc:
        return Decoded(None, None, None, exc.problem, "")
    except OSError as exc:  # e.g. the stick was pulled: an error row, and the run goes on
        return Decoded(None, None, None, f"cannot be read ({exc.strerror or exc})", "")


DECODE_WORKERS = 2  # at most; CXR_EDGE_DECODE_WORKERS overrides


def decode_workers() -> int:
    """Decoding threads. A full-size radiograph's decode takes 10-40 times its inference, so the interpreter
    mostly waits for it; a second thread made 16-bit PNGs 1.8x and JPEGs 1.3x faster here (Pillow's PNG and JPEG
    decoders and libjpeg-turbo let go of the GIL; GDCM, still used for JPEG-LS and small JPEG 2000, and Pillow's
    JPEG 2000 decoder do not: OpenJPEG's own threads make up for it, cxr_edge.inputs.dicom), at about 50-100 MB more peak
    memory per thread: two, not one per core, so that a 4-core Pi with little memory stays well inside it."""
    return int(os.environ.get("CXR_EDGE_DECODE_WORKERS", 0)) or min(DECODE_WORKERS, os.cpu_count() or 1)


def prefetched(folder: Path, names: Iterable[str], size: int, depth: int = PREFETCH,
               keep_gray: bool = False, workers: int | None = None) -> Iterator[tuple]:
    """(name, *decode(...)) for each name, in order, decoded by a pool of threads at most `depth` images ahead
    of the consumer."""
    pool = ThreadPoolExecutor(workers or decode_workers(), thread_name_prefix="cxr-decode")
    names = iter(names)
    ahead: collections.deque = collections.deque()

    def submit(count: int) -> None:
        for name in itertools.islice(names, count):
            ahead.append((name, pool.submit(decode, folder / name, size, keep_gray)))

    try:
        submit(depth)
        while ahead:
            name, future = ahead.popleft()
            item = future.result()
            submit(1)
            yield (name, *item)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def classify_paths(classifier: Classifier, folder: Path, names: list[str],
                   on_result: Callable[[Result], None] | None = None, batch_size: int = BATCH,
                   heatmaps: Path | None = None, visuals: Visuals | None = None, records=None) -> Iterator[Result]:
    """One Result per image (named relative to `folder`), in order; a file that cannot be decoded gets an
    error row and the run goes on. With `heatmaps`, an occlusion heatmap per classified image goes there; with
    `visuals`, the HTML report's thumbnail (and heatmap, when it asks for them) of each classified image; with
    `records` (cxr_edge.record.files.Recorder), its DICOM and FHIR results."""
    pending: list[tuple[str, np.ndarray, list[Reason]]] = []
    drawn: list[tuple] = []  # (display image, DICOM header) of each pending image
    pictures = heatmaps is not None or visuals is not None or records is not None

    def emit(results: list[Result]) -> Iterator[Result]:
        for i, result in enumerate(results):
            if result.label and pictures:
                _draw(classifier, result, *drawn[i], pending[i][1], heatmaps, visuals, records)
            if on_result:
                on_result(result)
            yield result

    for rel, pixels, problems, display, error, skipped, header in prefetched(
            Path(folder), names, classifier.size, keep_gray=pictures):
        if pixels is not None:
            pending.append((rel, pixels, problems))
            drawn.append((display, header))
            if len(pending) < batch_size:
                continue
        if pending:  # a full batch, or an error or skipped row that must keep its place in the order
            yield from emit(classifier.results(pending))
            pending, drawn = [], []
        if pixels is None:
            yield from emit([Result(rel, error=error or "", skipped=skipped)])
    if pending:
        yield from emit(classifier.results(pending))


def _draw(classifier, result: Result, display: np.ndarray, header, pixels: np.ndarray, heatmaps: Path | None,
          visuals: Visuals | None, records=None) -> None:
    """The heatmap file, the report's pictures and the record objects of one classified image; the occlusion map
    is computed once, and the record objects are made from the header the decode read."""
    from cxr_edge.pictures.heatmap import heat_overlay, label_heat, write_heatmap

    heat = None
    if heatmaps is not None or (visuals is not None and visuals.heatmaps) or \
            (records is not None and records.wants_heat(result.path)):
        heat = label_heat(classifier, result, pixels)
    if records is not None:
        records.add(result, display, heat, header)
    if heatmaps is not None:
        write_heatmap(heatmaps, result, display, heat)
    if visuals is not None:
        visuals.add(result.path, display, heat_overlay(result, display, heat, caption=False) if heat is not None else None)


@dataclass
class Summary:
    counts: dict[str, int]
    referred: int
    errors: int
    images: int  # rows: classified images and error rows, not skipped files
    seconds: float
    resumed: int = 0  # rows taken from the journal of an interrupted run, not classified now
    skipped: dict[str, int] = field(default_factory=dict)  # entries not classified (no rows), by kind

    @property
    def images_per_s(self) -> float:
        return (self.images - self.resumed) / self.seconds if self.seconds > 0 else 0.0


def rows_of(results: list[Result]) -> list[Result]:
    """The results that are report rows: everything but skipped non-images."""
    return [r for r in results if not r.skipped]


def summarize(results: list[Result], seconds: float, resumed: int = 0,
              passed_over: dict[str, int] | None = None) -> Summary:
    """The run's figures; `passed_over` counts the entries the folder's listing left out, by kind (find_files)."""
    skipped: dict[str, int] = dict(passed_over or {})
    for r in results:
        if r.skipped:
            skipped[r.skipped] = skipped.get(r.skipped, 0) + 1
    rows = rows_of(results)
    counts = {label: sum(r.label == label for r in rows) for label in LABELS}
    return Summary(counts, sum(r.refer for r in rows), sum(bool(r.error) for r in rows), len(rows),
                   seconds, resumed, dict(sorted(skipped.items())))


def run_folder(classifier: Classifier, folder: os.PathLike | str, recursive: bool = True,
               progress: Callable[[int, int], None] | None = None,
               heatmaps: Path | None = None, visuals: Visuals | None = None,
               records=None) -> tuple[list[Result], Summary]:
    """Classify every image under `folder`; the folder is only read, never written.

    `progress(done, total)` is called after each image.
    """
    from cxr_edge.inputs.discover import find_files

    folder = Path(folder)
    names, passed_over = find_files(folder, recursive)
    start = time.perf_counter()
    results: list[Result] = []
    on_result = (lambda r: progress(len(results) + 1, len(names))) if progress else None
    for result in classify_paths(classifier, folder, names, on_result, heatmaps=heatmaps, visuals=visuals,
                                 records=records):
        results.append(result)
    return results, summarize(results, time.perf_counter() - start, passed_over=passed_over)
