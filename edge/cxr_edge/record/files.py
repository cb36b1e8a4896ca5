"""Writing the record objects of classified images as files: `cxr-edge classify --sr DIR --fhir DIR` and the clinic
node's outbox. Each file is written atomically and named after its source (sub-folders joined with '__', as the
heatmaps are), so a second run over the same stick writes the same files with the same UIDs."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxr_edge.atomic import write_atomic
from cxr_edge.record.dicom import NotRecordable, Producer, heatmap_capture, source_header, structured_report
from cxr_edge.record.fhir import ImageRecord, transaction


def dataset_bytes(ds) -> bytes:
    """A DICOM Part 10 file's bytes."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def picture_of(result, display: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The heatmap over the image with the banner burned in (label, probability, referral, the notice)."""
    from cxr_edge.pictures.heatmap import heat_overlay

    return np.asarray(heat_overlay(result, display, heat, caption=True).convert("RGB"))


def dicom_objects(header, result, picture: np.ndarray | None, producer: Producer) -> tuple[list, list[str]]:
    """The DICOM objects of one classified image, made from its source's header: [("sr", SR), ("capture", the
    heatmap secondary capture)] (the capture only with a `picture`, picture_of's), and the notes about the header
    (what was missing and made up: no header value in them). The one place they are assembled, for `classify --sr`
    and for the node's outbox. NotRecordable for a header no result can go with."""
    source, notes = source_header(header)
    objects = [("sr", structured_report(source, result, producer))]
    if picture is not None:
        objects.append(("capture", heatmap_capture(source, result, picture, producer)))
    return objects, notes


def image_record(result, header, identity: str, classified_at: datetime.datetime) -> ImageRecord:
    if header is None:
        return ImageRecord(result, identity, classified_at)
    return ImageRecord(result, identity, classified_at, str(header.get("PatientID", "") or ""),
                       str(header.get("StudyInstanceUID", "") or ""), str(header.get("StudyDate", "") or ""),
                       str(header.get("StudyTime", "") or ""))


def flat_name(rel_path: str) -> str:
    return rel_path.replace("/", "__")


@dataclass
class Recorder:
    """The SR and secondary capture of each classified DICOM image into `sr_dir`, the FHIR Bundle of each classified
    image into `fhir_dir`. One image's failure is a line in `problems`, never the end of the run."""

    folder: Path
    producer: Producer
    sr_dir: Path | None = None
    fhir_dir: Path | None = None
    problems: list[str] = field(default_factory=list)
    written: int = 0

    def identity(self) -> dict:
        """What a resumed run must have written too (cxr_edge.run.journal)."""
        return {"sr": str(self.sr_dir.resolve()) if self.sr_dir else None,
                "fhir": str(self.fhir_dir.resolve()) if self.fhir_dir else None}

    def wants_heat(self, rel_path: str) -> bool:
        from cxr_edge.inputs.dicom import looks_like_dicom

        return self.sr_dir is not None and looks_like_dicom(self.folder / rel_path)

    def add(self, result, display: np.ndarray | None, heat: np.ndarray | None, header=None) -> None:
        """`header`: the image's DICOM header as its decode read it (None: not DICOM)."""
        if not result.label:
            return
        path = self.folder / result.path
        name = flat_name(result.path)
        now = datetime.datetime.now().astimezone()
        try:
            if self.sr_dir is not None and header is not None:
                self._dicom(name, header, result, display, heat)
            if self.fhir_dir is not None:
                identity = (str(header.get("SOPInstanceUID", "")) if header is not None else "") \
                    or "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
                bundle = transaction([image_record(result, header, identity, now)], self.producer)
                write_atomic(self.fhir_dir / f"{name}.fhir.json", json.dumps(bundle, indent=1, ensure_ascii=False))
                self.written += 1
        except NotRecordable as exc:
            self.problems.append(f"{result.path}: no DICOM result: {exc}")
        except (OSError, ValueError, AttributeError, TypeError) as exc:  # noqa: PERF203 - one image, not the run
            # the type only: a message could quote a header value (a patient's birth date)
            self.problems.append(f"{result.path}: results not written ({type(exc).__name__}); the image's header "
                                 "may be damaged: send it again from the X-ray unit")

    def _dicom(self, name: str, header, result, display, heat) -> None:
        picture = picture_of(result, display, heat) if display is not None and heat is not None else None
        objects, notes = dicom_objects(header, result, picture, self.producer)
        self.problems += [f"{result.path}: {note}" for note in notes]
        for kind, ds in objects:
            write_atomic(self.sr_dir / f"{name}.{'sr' if kind == 'sr' else 'heatmap'}.dcm", dataset_bytes(ds))
            self.written += 1
