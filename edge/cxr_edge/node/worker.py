"""The classifying thread: takes received instances from the database in order, classifies each on the same
Classifier as `classify` (self-test, signature, site file, referral rules, header rejects), and records the
result and the study's. Fed from the database, not from the receiver, so receiving never waits on a model and a
restart picks up whatever was stored but not yet classified: each instance is classified exactly once, because
its result and its "classified" mark are one transaction.

A study's result is its leading image's (cxr_edge.node.studies: the most urgent of those the AI could judge),
stored with the study so that nothing decides it again; final once no image has arrived for `study_stable_seconds`
and every image is classified.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from types import SimpleNamespace
from typing import Callable

import numpy as np

from cxr_edge.node.pictures import keep_heat, keep_thumbnail
from cxr_edge.node.state import State
from cxr_edge.node.studies import lead_image
from cxr_edge.reports.triage import band
from cxr_edge.run.classify import Classifier, decode
from cxr_edge.run.result import Result


PAUSE_SECONDS, PAUSE_MAX_SECONDS = 1.0, 30.0  # the waits after the database refused a pass: 1, 2, 4 ... 30 s
OWED_SECONDS = 60.0  # how often the records owed (a full disk when they were due) are tried again ...
SPACE_SECONDS = 5.0  # ... and, while some are owed, how often free space is looked at: they are made once it is back
MISSING = object()  # a heatmap the capture needs that the disk refused: the image's records are owed


class Worker(threading.Thread):
    def __init__(self, classifier: Classifier, state: State, stable_seconds: float, log: Callable[[str], None],
                 publisher=None, on_queued: Callable[[], None] | None = None):
        """`publisher` (cxr_edge.node.outbox.Publisher): the objects to send about each result, queued with it;
        `on_queued` wakes the sender."""
        super().__init__(name="cxr-classify", daemon=True)
        self.classifier, self.state, self.stable_seconds, self.log = classifier, state, stable_seconds, log
        self.publisher, self.on_queued = publisher, on_queued
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.classified = 0
        self._owed_at = 0.0  # when the owed records were last tried: at start, then every OWED_SECONDS
        self._owing = False  # a record could not be made since: tried again as soon as there is room

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the image in hand, then return from run()."""
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        lower_priority(10)
        paused = 0  # passes in a row the database refused: the wait doubles, the log says it once
        while not self._stopping.is_set():
            try:
                batch = self._pass()
            except Exception as exc:  # noqa: BLE001 - the database busy or failing: say so, wait, try again
                if not paused:
                    self.log(f"classifying paused: {type(exc).__name__}: {exc}; trying again")
                self._stopping.wait(min(PAUSE_MAX_SECONDS, PAUSE_SECONDS * 2 ** paused))
                paused += 1
                continue
            if paused:
                self.log(f"classifying resumed after {paused} pause(s)")
                paused = 0
            if not batch and self._owed_due():
                self._owed_at = time.monotonic()
                self.make_owed()
            if not batch:
                self._wake.wait(timeout=min(1.0, max(0.05, self.stable_seconds / 4)))
                self._wake.clear()

    def _owed_due(self) -> bool:
        waited = time.monotonic() - self._owed_at
        return waited >= OWED_SECONDS or (self._owing and waited >= SPACE_SECONDS and self.publisher.has_room())

    def _pass(self) -> list:
        """Classify what is pending, then settle the studies; returns what was pending."""
        batch = self.state.pending()
        for instance in batch:
            if self._stopping.is_set():
                return batch
            try:
                self._classify(instance)
            except sqlite3.OperationalError:
                raise  # the database busy, locked or failing: no fault of the image's; it stays pending (run)
            except Exception as exc:  # noqa: BLE001 - one image's fault must not stop the node
                self.state.record_result(instance.sop_instance_uid, Result(
                    instance.path, error=f"could not be classified ({type(exc).__name__}: {exc})"),
                    bundle=self.classifier.bundle.manifest_sha256)
                self.log(f"could not classify {instance.sop_instance_uid}: {type(exc).__name__}: {exc}")
        self._settle_studies()
        return batch

    def _classify(self, instance) -> None:
        # read once, whole: the model input, the display image (thumbnail, heatmap) and the header (SR) come from it
        decoded = decode(self.state.data / instance.path, self.classifier.size, keep_gray=True)
        if decoded.pixels is not None:
            result = self.classifier.results([(instance.path, decoded.pixels, decoded.reasons)])[0]
        else:
            result = Result(instance.path, error=decoded.error or f"{decoded.skipped}: not an image")
        outgoing = self._publish(instance, result, decoded.header, self._pictures(instance, result, decoded))
        self.state.record_result(instance.sop_instance_uid, result, outgoing or (), owed=outgoing is None,
                                 bundle=self.classifier.bundle.manifest_sha256)
        self.classified += 1
        if outgoing:
            self.publisher.discard_unqueued(outgoing)  # e.g. objects sent before a crash, written again
            if self.on_queued:
                self.on_queued()
        self.log(f"classified {instance.sop_instance_uid}: {result.label or 'error'}"
                 + (" (referred)" if result.refer else ""))

    def _pictures(self, instance, result: Result, decoded):
        """The screen's thumbnail and, where a heatmap capture is sent, the heatmap (kept for the screen too, so
        nothing computes it again); returns the heatmap as RGB pixels for the capture, None when none is sent, or
        MISSING when the disk refused it (the capture is then owed, not sent without it). A failure to keep them is
        logged and never loses the result."""
        if decoded.display is None:
            return None
        try:
            keep_thumbnail(self.state.data, instance.id, decoded.display)
            if not (result.label and self.publisher is not None and self.publisher.wants_heatmap):
                return None
            from cxr_edge.pictures.heatmap import label_heat

            heat = label_heat(self.classifier, result, decoded.pixels)
            return np.asarray(keep_heat(self.state.data, instance.id, result, decoded.display, heat).convert("RGB"))
        except OSError as exc:
            self.log(f"no thumbnail or heatmap kept for {instance.sop_instance_uid}: {type(exc).__name__}")
            wanted = result.label and self.publisher is not None and self.publisher.wants_heatmap
            return MISSING if wanted else None

    def _publish(self, instance, result: Result, header, picture) -> tuple | None:
        """The SR and heatmap to send; None when they could not be made (a full disk): the result is recorded all
        the same, owing them, and make_owed makes them later."""
        if self.publisher is None:
            return ()
        try:
            if picture is MISSING:
                raise OSError("the heatmap could not be kept")
            return self.publisher.image(instance, result, header, picture)
        except Exception as exc:  # noqa: BLE001 - the result is recorded all the same
            # the type only: a message could quote a header value
            self.log(f"no SR or heatmap for {instance.sop_instance_uid} yet ({type(exc).__name__}): owed, made "
                     "again later")
            self._owing = True
            return None

    def _settle_studies(self) -> None:
        now = time.time()
        for study, last_received, unclassified in self.state.unsettled_studies():
            images = self.state.study_images(study)
            if not images:
                continue
            lead, first = lead_image(images)
            final = unclassified == 0 and now - last_received >= self.stable_seconds
            outgoing = self._study_objects(study) if final else ()
            p_abnormal = max((1 - r.probs[0] for _, r in images if r.label), default=None)
            settled = self.state.set_study(study, lead, first.label, first.refer, final, last_received,
                                           outgoing or (), p_abnormal, band(first), owed=outgoing is None)
            if outgoing:
                self.publisher.discard_unqueued(outgoing)  # a late image came: its Bundle is made again later
            if settled and final:
                self.log(f"study {study} final: {first.label or 'error'}" + (" (referred)" if first.refer else ""))
                if outgoing and self.on_queued:
                    self.on_queued()

    def _study_objects(self, study: str) -> tuple | None:
        """The study's FHIR Bundle to send; None when it could not be made (owed, as _publish's)."""
        if self.publisher is None:
            return ()
        try:
            return self.publisher.study(study)
        except Exception as exc:  # noqa: BLE001 - the study is final all the same
            self.log(f"no FHIR Bundle for study {study} yet ({type(exc).__name__}): owed, made again later")
            self._owing = True
            return None

    def make_owed(self) -> int:
        """Make and queue the records owed (an image's SR and heatmap, a final study's FHIR Bundle, not made when
        they were due: a full disk); returns how many were made. What still cannot be made stays owed."""
        if self.publisher is None:
            return 0
        made, self._owing = 0, False
        for row in self.state.owed_results(bundle=self.classifier.bundle.manifest_sha256):
            instance = SimpleNamespace(id=row["id"], sop_instance_uid=row["sop_instance_uid"],
                                       study_instance_uid=row["study_instance_uid"], path=row["path"])
            result = Result.from_record(row["path"], row)
            decoded = decode(self.state.data / row["path"], self.classifier.size, keep_gray=True)
            outgoing = self._publish(instance, result, decoded.header, self._pictures(instance, result, decoded))
            if outgoing is None:
                return made  # the disk is still full: the rest waits for the next sweep
            self.state.settle_owed(outgoing, sop_instance_uid=row["sop_instance_uid"])
            made += 1
        for study in self.state.owed_studies():
            outgoing = self._study_objects(study)
            if outgoing is None:
                return made
            self.state.settle_owed(outgoing, study_instance_uid=study)
            made += 1
        if made:
            self.log(f"{made} owed record(s) made and queued")
            if self.on_queued:
                self.on_queued()
        return made


def lower_priority(nice: int) -> None:
    """This thread (a task of its own to Linux) at `nice`: classifying at 10, so that on a 2-core box receiving,
    which the X-ray unit waits on, gets the CPU first, and classifying takes what is left and catches up between
    studies; a candidate bundle (cxr_edge.node.candidate) at 19, below both."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):  # not Linux, or not allowed: the same work, at the same priority
        pass
