"""Shadow mode: a candidate bundle classifies the images the active bundle has classified, in a thread that works
only while no received image waits and the unit has been quiet for QUIET_SECONDS, at the lowest priority, so that
the active result is never later for it.
Its results are kept apart (state.shadow) and never shown as the clinician's, sent to the PACS or the EHR; the
comparison on the clinic's reviews (cxr_edge.site.compare) says whether it is as good, and `cxr-edge candidate
promote` makes it active (cxr_edge.node.bundles).

The candidate is `[candidate] model`, or, where that is not set, the last bundle a stick brought in the folder
`[candidate] stick_folder`: staged (copied into the data folder) only when a key of the trust folder signed it and
its own parity gate passed; anything else is logged and ignored.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Callable

from cxr_edge.node.config import NodeConfig
from cxr_edge.run.classify import decode
from cxr_edge.run.result import Result

STAGED = "candidate"  # the data folder's folder of the candidate a stick brought
BUSY_SECONDS = 0.5  # how often a waiting candidate looks whether the receiving queue is empty again
QUIET_SECONDS = 2.0  # ... and whether the unit has been quiet this long: images come in bursts (a patient's views)
IDLE_SECONDS = 2.0


def sampled(sop_instance_uid: str, share: float) -> bool:
    """Whether the candidate classifies this image: drawn from a hash of its UID, so the sample depends on nothing
    about the image or its result (the comparison stays unbiased) and is the same after a restart."""
    if share >= 1:
        return True
    draw = int.from_bytes(hashlib.sha256(sop_instance_uid.encode()).digest()[:8], "big") / 2**64
    return draw < share


def candidate_path(config: NodeConfig) -> Path | None:
    """The candidate bundle: `[candidate] model`, else the one staged from a stick, else None."""
    if config.candidate.model is not None:
        return config.candidate.model
    staged = sorted((config.data / STAGED).glob("*.cxrb")) if (config.data / STAGED).is_dir() else []
    return staged[-1] if staged else None


def open_candidate(config: NodeConfig, active_sha: str, log: Callable[[str], None], threads: int = 1):
    """The candidate's Classifier with the active bundle's rules (signature, gate, self-test), at its own bundle
    threshold; None (with a log line) when there is none, it cannot be used, or it is the active bundle."""
    from cxr_edge.bundle.load import BundleError, load_bundle
    from cxr_edge.bundle.selftest import SelfTestError
    from cxr_edge.models.interpreter import NoInterpreterError
    from cxr_edge.run.classify import Classifier

    path = candidate_path(config)
    if path is None:
        return None
    try:
        bundle = load_bundle(path)
        if bundle.manifest_sha256 == active_sha:
            log(f"candidate {path.name} is the active bundle: nothing to compare")
            return None
        return Classifier(bundle, threads=threads)
    except (BundleError, SelfTestError, NoInterpreterError, ValueError, OSError) as exc:
        log(f"candidate {path.name} not used: {exc}")
        return None


def stage_from_stick(config: NodeConfig, stick: Path, log: Callable[[str], None]) -> Path | None:
    """A signed candidate bundle in the stick's `[candidate] stick_folder`, copied into the data folder when a
    trusted key signed it and its gate passed (what the node runs must not depend on a stick staying in);
    None, with a log line, otherwise. The newest-named .cxrb on the stick is the one taken."""
    from cxr_edge.bundle.load import BundleError, load_bundle

    folder = config.candidate.stick_folder
    if not folder or not (stick / folder).is_dir():
        return None
    offered = sorted((stick / folder).glob("*.cxrb"))
    if not offered:
        return None
    path = offered[-1]
    try:
        bundle = load_bundle(path)
    except (BundleError, OSError, ValueError) as exc:
        log(f"candidate {path.name} on stick {stick.name} ignored: {exc}")
        return None
    if bundle.origin is None or not bundle.origin.verified:
        log(f"candidate {path.name} on stick {stick.name} ignored: not signed by a key of the trust folder "
            f"({bundle.origin.problem if bundle.origin else 'no signature'})")
        return None
    staged = config.data / STAGED / f"{bundle.manifest_sha256[:16]}.cxrb"
    if not staged.exists():
        from cxr_edge.node.bundles import copy_durably

        staged.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        copy_durably(path, staged)
        os.utime(staged)  # the newest staged is the candidate
        log(f"candidate {path.name} from stick {stick.name} staged (signed by {bundle.origin.signer!r}); it runs "
            "beside the active bundle from the next start")
    return staged


class ShadowWorker(threading.Thread):
    """The candidate's classifying thread (see the module's docstring)."""

    def __init__(self, classifier, state, share: float, log: Callable[[str], None]):
        super().__init__(name="cxr-candidate", daemon=True)
        self.classifier, self.state, self.share, self.log = classifier, state, share, log
        self.bundle = classifier.bundle.manifest_sha256
        self._stopping = threading.Event()
        self.classified = 0

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        from cxr_edge.node.worker import lower_priority

        lower_priority(19)  # below the active bundle's classifying (10) and receiving (0)
        after, paused = 0, False  # the last image id seen this run (sampled out or classified)
        while not self._stopping.is_set():
            try:
                if self._busy():  # received images wait for the active bundle, or more are coming: they go first
                    self._stopping.wait(BUSY_SECONDS)
                    continue
                batch = self.state.shadow_pending(self.bundle, after)
                for instance in batch:
                    if self._stopping.is_set() or self._busy():
                        break
                    if sampled(instance.sop_instance_uid, self.share):
                        result = self._classify(instance)
                        if result is None:  # an image arrived meanwhile: this one again later
                            break
                        self.state.record_shadow(instance.sop_instance_uid, self.bundle, result)
                        self.classified += 1
                    after = instance.id
                if paused:
                    self.log("candidate classifying resumed")
                    paused = False
                if not batch:
                    self._stopping.wait(IDLE_SECONDS)
            except Exception as exc:  # noqa: BLE001 - the database busy or failing: wait (never stop the node)
                if not paused:
                    self.log(f"candidate classifying paused: {type(exc).__name__}: {exc}")
                    paused = True
                self._stopping.wait(IDLE_SECONDS)

    def _busy(self) -> bool:
        """An image waits for the active bundle, or one arrived less than QUIET_SECONDS ago (more may follow)."""
        return bool(self.state.queue_length()) or time.time() - self.state.last_received() < QUIET_SECONDS

    def _classify(self, instance) -> Result | None:
        """The candidate's result, or None when a received image began waiting during the decode: the active
        bundle's image goes first, and the model is not run beside it."""
        try:
            decoded = decode(self.state.data / instance.path, self.classifier.size)
            if self.state.queue_length():
                return None
            if decoded.pixels is None:
                return Result(instance.path, error=decoded.error or f"{decoded.skipped}: not an image")
            return self.classifier.results([(instance.path, decoded.pixels, decoded.reasons)])[0]
        except Exception as exc:  # noqa: BLE001 - one image's fault must not stop the candidate
            return Result(instance.path, error=f"could not be classified ({type(exc).__name__}: {exc})")


def evaluate(config: NodeConfig, state, active, candidate) -> dict:
    """The comparison of `candidate` with the `active` Classifier on the node's reviewed images both classified
    (cxr_edge.site.compare), with how many images each classified and how many of the candidate's were reviewed.
    `calibration` holds the candidate's figures from the reviews, from which promotion writes its site file."""
    import numpy as np

    from cxr_edge.reasons import THRESHOLD_FREE
    from cxr_edge.site.calibrate import calibration_floors
    from cxr_edge.site.compare import compare, threshold_from_reviews
    from cxr_edge.node.truth import judged

    sha = candidate.bundle.manifest_sha256
    found, left_out = judged(state, config.web.confirmatory_findings)
    truth = {result.path: label for _, result, label in found}
    shadow = state.shadow_results_of(sha, [row["sop_instance_uid"] for row, _, _ in found])
    pairs = [(r, Result.from_record(r.path, shadow[row["sop_instance_uid"]])) for row, r, _ in found
             if row["sop_instance_uid"] in shadow and r.label and shadow[row["sop_instance_uid"]]["label"]]
    # images either bundle refers whatever its threshold (out of distribution, header): neither judges them, and
    # calibration leaves them out; counted, since a candidate that refers more is a cost of its own
    referred = [sum(bool(THRESHOLD_FREE & set(pair[i].reason_codes)) for pair in pairs) for i in (0, 1)]
    pairs = [pair for pair in pairs if not any(THRESHOLD_FREE & set(r.reason_codes) for r in pair)]
    target = float((active.site.figures.get("target_sensitivity") if active.site else None)
                   or active.bundle.manifest.get("target_sensitivity") or 0.95)
    thresholds = [threshold_from_reviews(who, [pair[i] for pair in pairs], truth, target)
                  for i, who in enumerate((active, candidate))]
    margins = {"sensitivity": config.candidate.max_sensitivity_drop,
               "specificity": config.candidate.max_specificity_drop,
               "agreement with readers": config.candidate.max_accuracy_drop}
    probs = [np.array([pair[i].probs for pair in pairs], np.float64).reshape(-1, 4) for i in (0, 1)]
    calibration = {"ready": thresholds[1]["calibrated"], "floors": calibration_floors(target)}
    rules = tuple(None if t["calibrated"] else t["threshold"] for t in thresholds)  # None: calibrated, resampled
    report = compare([truth[a.path] for a, _ in pairs], probs[0], probs[1], rules, margins, calibration, target)
    return {**report, "counts": state.shadow_counts(sha), "left_out": left_out, "target_sensitivity": target,
            "referred_whatever_the_threshold": {"active": referred[0], "candidate": referred[1]},
            "calibrated": {"active": thresholds[0]["calibrated"], "candidate": thresholds[1]["calibrated"]},
            "bundles": {"active": {"name": active.bundle.path.name, "manifest_sha256": active.bundle.manifest_sha256},
                        "candidate": {"name": candidate.bundle.path.name, "manifest_sha256": sha,
                                      "path": str(candidate.bundle.path)}},
            "calibration": thresholds[1]["figures"]}


def verdict_words(report: dict) -> str:
    """The verdict in one line with what it means for promotion (English: the command line's, and the status
    page's figures beside its translated heading)."""
    n = report["reviewed"]
    if report["verdict"] == "PASS":
        return (f"PASS: not worse than the active bundle within the margins, on {n} reviewed images; "
                "`cxr-edge candidate promote` can make it active")
    if report["verdict"] == "FAIL":
        return f"FAIL: worse than the active bundle past a margin on {n} reviewed images; keep the active bundle"
    more = report["more_reviews"]
    return (f"INCONCLUSIVE: {n} reviewed images cannot tell; "
            + (f"about {more:,} more reviewed images would settle it at the rates seen" if more is not None else
               "review images of both kinds (normal and abnormal) to settle it"))


def format_comparison(report: dict) -> str:
    """The comparison as `cxr-edge candidate` prints it."""
    counts, names = report["counts"], report["bundles"]
    lines = [f"active:    {names['active']['name']} ({names['active']['manifest_sha256'][:12]})",
             f"candidate: {names['candidate']['name']} ({names['candidate']['manifest_sha256'][:12]})",
             f"images classified: active {counts['active']}, candidate {counts['candidate']} (of which "
             f"{counts['candidate_reviewed']} reviewed); compared on {report['reviewed']} reviewed images both "
             f"classified ({report['abnormal']} abnormal, {report['normal']} normal)"]
    for who in ("active", "candidate"):
        how = "calibrated on these reviews" if report["calibrated"][who] else "its current one (too few reviews to " \
                                                                              "calibrate)"
        lines.append(f"threshold, {who}: {report['thresholds'][who]:.4f} ({how}; target sensitivity "
                     f"{report['target_sensitivity']:.2f})")
    lines.append("check                    active   candidate  drop (95% CI)              margin  verdict")
    for c in report["checks"]:
        if c["images"]:
            lines.append(f"{c['name']:<24} {c['float_value']:.4f}   {c['quantized_value']:.4f}     "
                         f"{c['estimate']:+.4f} ({c['low']:+.4f} to {c['high']:+.4f})  {c['limit']:.4f}  "
                         f"{c['verdict']}")
        else:
            lines.append(f"{c['name']:<24} no reviewed image of its kind yet                 {c['limit']:.4f}  "
                         f"{c['verdict']}")
    m = report["mcnemar"]
    lines.append(f"McNemar (abnormal vs normal): right only by the active {m['right_only_active']}, only by the "
                 f"candidate {m['right_only_candidate']}, exact p = {m['p_value']:.3g}")
    for label, row in report["per_class"].items():
        lines.append(f"readers said {label} ({row['images']}): active agreed {row['active']['rate']:.2f} "
                     f"({row['active']['low']:.2f}-{row['active']['high']:.2f}), candidate "
                     f"{row['candidate']['rate']:.2f} ({row['candidate']['low']:.2f}-{row['candidate']['high']:.2f})")
    referred = report["referred_whatever_the_threshold"]
    if any(referred.values()):
        lines.append(f"left out: referred whatever the threshold (out of distribution, header) by the active "
                     f"{referred['active']}, by the candidate {referred['candidate']}")
    if report["left_out"]:
        lines.append(f"left out: {report['left_out']} reviewed image(s) the reader found not assessable")
    lines.append(verdict_words(report))
    return "\n".join(lines)


class CandidateStatus:
    """The status page's candidate section: the comparison made again only when a result or a review changed its
    inputs, and at most every REFRESH_SECONDS (its bootstrap takes a moment on a Pi)."""

    REFRESH_SECONDS = 30.0

    def __init__(self, config: NodeConfig, state, active, shadow: ShadowWorker | None):
        self.config, self.state, self.active, self.shadow = config, state, active, shadow
        self._key, self._made, self._report = None, 0.0, None
        self._lock = threading.Lock()

    def __call__(self) -> dict | None:
        if not self.config.candidate.enabled:
            return None
        if self.shadow is None:
            return {"running": False}
        counts = self.state.shadow_counts(self.shadow.bundle)
        reviews = self.state.review_count()
        with self._lock:
            stale = self._key != (counts, reviews) and time.monotonic() - self._made >= self.REFRESH_SECONDS
            if self._report is None or stale:
                report = evaluate(self.config, self.state, self.active, self.shadow.classifier)
                self._key, self._made, self._report = (counts, reviews), time.monotonic(), report
            report = self._report
        return {"running": True, "name": self.shadow.classifier.bundle.path.name, "counts": counts,
                "verdict": report["verdict"], "reviewed": report["reviewed"], "more_reviews": report["more_reviews"]}
