"""What the node sends about its results, made by the classifying thread: for each classified image the SR and,
with `heatmap_capture`, the heatmap secondary capture (for every `[send] dicom` destination); for each study once
final, its FHIR transaction Bundle (for `fhir_url`). Each object is written to `data/outbox/` durably, and queued in
the same transaction that records the result (cxr_edge.node.state), so that no result is ever left unqueued.
The sender (cxr_edge.node.sender) takes them from there."""

from __future__ import annotations

import datetime
import errno
import json
import shutil
from pathlib import Path

from cxr_edge.node.config import SendConfig
from cxr_edge.node.state import Instance, Outgoing, State, write_durably
from cxr_edge.record.dicom import NotRecordable, Producer
from cxr_edge.record.fhir import ImageRecord, transaction
from cxr_edge.record.files import dataset_bytes, dicom_objects
from cxr_edge.run.result import Result

OUTBOX = "outbox"


def dicom_destination(peer) -> str:
    return f"dicom:{peer}"


def fhir_destination(url: str) -> str:
    return f"fhir:{url}"


class LowSpace(OSError):
    """Free space in the data folder below the watermark: no outbox file is written (the result owes it)."""


class Publisher:
    def __init__(self, send: SendConfig, classifier, state: State, log, min_free_mb: int = 0):
        """`min_free_mb`: below this free space in the data folder (the node's [dicom] min_free_mb), no outbox file
        is written: the space left is the database's; the results owe their objects until it returns."""
        self.send, self.classifier, self.state, self.log = send, classifier, state, log
        self.min_free_mb = min_free_mb
        self.producer = Producer.of(classifier)
        self._sweep()

    def _sweep(self) -> None:
        """At start, before any thread writes there: remove outbox files no queued or failed object names (written
        just before a crash that kept them from being queued). They hold patient data: none is left about."""
        folder = Path(self.state.data) / OUTBOX
        for path in folder.glob("*") if folder.is_dir() else ():
            if path.is_file() and not self.state.path_still_needed(f"{OUTBOX}/{path.name}"):
                path.unlink()

    def discard_unqueued(self, outgoing) -> None:
        """Remove the files of objects that were not queued after all (sent before, or a study that changed)."""
        for path in {o.path for o in outgoing}:
            if not self.state.path_still_needed(path):
                (Path(self.state.data) / path).unlink(missing_ok=True)

    @property
    def wants_heatmap(self) -> bool:
        """The worker computes each classified image's heatmap, for the capture (and keeps it for the screen)."""
        return bool(self.send.dicom) and self.send.heatmap_capture

    def image(self, instance: Instance, result: Result, header, picture) -> tuple[Outgoing, ...]:
        """The SR and heatmap capture of a classified image (cxr_edge.record.files.dicom_objects), written and
        ready to queue; none for an error row. `header`: the image's DICOM header as the worker's decode read it;
        `picture`: the heatmap with its banner as RGB pixels, or None."""
        if not self.send.dicom or not result.label or header is None:
            return ()
        try:
            objects, notes = dicom_objects(header, result, picture if self.send.heatmap_capture else None,
                                           self.producer)
        except NotRecordable:  # the receiver refuses such datasets; a file put there by hand
            return ()
        for note in notes:  # fixed words, no header value
            self.log(f"{instance.sop_instance_uid}: {note}")
        outgoing = []
        for kind, ds in objects:
            path = self._write(f"{ds.SOPInstanceUID}.dcm", dataset_bytes(ds))
            outgoing += [Outgoing(dicom_destination(peer), ds.SOPInstanceUID, kind, path, instance.study_instance_uid)
                         for peer in self.send.dicom]
        return tuple(outgoing)

    def study(self, study_instance_uid: str) -> tuple[Outgoing, ...]:
        """The FHIR Bundle of a final study (its classified images), written and ready to queue."""
        if not self.send.fhir_url:
            return ()
        images = [_image_record(row, result, study_instance_uid)
                  for row, result in self.state.study_results(study_instance_uid) if result.label]
        if not images:
            return ()
        bundle = transaction(images, self.producer)
        key = bundle["identifier"]["value"]
        path = self._write(f"fhir-{key.removeprefix('urn:uuid:')}.json",
                           json.dumps(bundle, ensure_ascii=False).encode())
        return (Outgoing(fhir_destination(self.send.fhir_url), key, "fhir", path, study_instance_uid),)

    def has_room(self) -> bool:
        """Free space in the data folder at or above the watermark: the owed records can be tried."""
        return self._free_mb() >= self.min_free_mb

    def _free_mb(self) -> float:
        return shutil.disk_usage(self.state.data).free / 2**20

    def _write(self, name: str, data: bytes) -> str:
        free_mb = self._free_mb()
        if free_mb < self.min_free_mb:
            raise LowSpace(errno.ENOSPC, f"free space {free_mb:.0f} MB is below min_free_mb {self.min_free_mb}")
        relative = f"{OUTBOX}/{name}"
        write_durably(Path(self.state.data) / relative, data)
        return relative


def _image_record(row: dict, result: Result, study_instance_uid: str) -> ImageRecord:
    classified = datetime.datetime.fromtimestamp(row["classified"]).astimezone()
    return ImageRecord(result, row["sop_instance_uid"], classified, row["patient_id"], study_instance_uid,
                       row["study_date"])
