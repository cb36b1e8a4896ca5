"""DICOM radiographs, read with pydicom and its GDCM decoder plugin (both in the base install, both free of GPL
code): every common transfer syntax (uncompressed little and big endian, deflated, RLE, JPEG baseline, JPEG
Lossless Process 14 and SV1, JPEG-LS, JPEG 2000); 12-bit JPEG Extended needs a decoder the base install does
not have (`pylibjpeg-libjpeg`, GPLv3) and gets an error row that says so.

Pixel data with the modality LUT and the VOI LUT or window applied, MONOCHROME1 (or Presentation LUT Shape
INVERSE) inverted, then scaled to the image contract's 2-D uint8. A DICOM object without pixel data (DICOMDIR,
structured report, key object selection, presentation state) is not an image: NoPixelData names its kind.

The header is used for safety only: a lateral or oblique view, a body part other than the chest, a modality
other than radiography, or a "for processing" image is referred, with the reason in words. No header value
(patient name, ID, dates, age, or any other) is ever put into a result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PREAMBLE = 128  # bytes before the "DICM" magic in a DICOM Part 10 file


def looks_like_dicom(path: os.PathLike | str) -> bool:
    """A .dcm file, or any file with the DICOM Part 10 preamble ("DICM" at byte 128)."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(PREAMBLE)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


class NoPixelData(ValueError):
    """A DICOM object that is not an image; `kind` says what it is, in words."""

    def __init__(self, kind: str):
        super().__init__(f"{kind}: a DICOM object without pixel data, not an image")
        self.kind = kind


@dataclass(frozen=True)
class DicomImage:
    pixels: np.ndarray  # 2-D uint8, the image contract's
    refer: list[str]  # reasons from the header to refer the image to a clinician


# What the models were trained on: frontal chest radiographs. Empty means the header does not say.
FRONTAL_VIEWS = frozenset({"", "PA", "AP"})
CHEST_PARTS = frozenset({"", "CHEST", "THORAX", "LUNG", "LUNGS", "CHEST_LUNG"})
RADIOGRAPHY = frozenset({"", "CR", "DX", "DR", "RG"})  # DR is not a DICOM term, but units write it
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


def _kind(ds) -> str:
    """What a DICOM object without pixel data is, from its SOP class (no header value beyond that)."""
    sop = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or ds.get("SOPClassUID", ""))
    if sop == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        return "DICOMDIR"
    name = _uid_name(sop)
    return name.removesuffix(" Storage") if name else "DICOM object"


def _uid_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name if uid else ""
    return "" if name == uid else name


def header_reasons(ds) -> list[str]:
    """Why the header says this is not an image the models were trained for. The words are fixed: no value
    from the header is copied into them."""
    reasons = []
    text = lambda keyword: str(ds.get(keyword, "") or "").strip().upper()  # noqa: E731
    if text("ViewPosition") not in FRONTAL_VIEWS:
        reasons.append("not a frontal view (the DICOM header gives a lateral or oblique view position): the "
                       "models read frontal PA/AP chest radiographs")
    if text("BodyPartExamined") not in CHEST_PARTS:
        reasons.append("the DICOM header names a body part other than the chest")
    if text("Modality") not in RADIOGRAPHY:
        reasons.append("the DICOM header names a modality other than radiography (CR/DX)")
    if text("PresentationIntentType") == "FOR PROCESSING":
        reasons.append("a 'for processing' image (raw detector data, not meant for viewing)")
    return reasons


def read_dicom(path: os.PathLike | str) -> DicomImage:
    """The first frame as 2-D uint8 grayscale, and the header's reasons to refer it. Raises NoPixelData for an
    object that is not an image, and ValueError with a message naming the problem for one that cannot be read."""
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:
        raise ValueError("a DICOM file, and pydicom is not installed: run `pip install 'cxr-edge[dicom]'`") from None
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:  # pydicom raises many types for a damaged file
        raise ValueError(f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    if "PixelData" not in ds:
        raise NoPixelData(_kind(ds))
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        name = getattr(syntax, "name", str(syntax))
        raise ValueError(f"DICOM pixel data in transfer syntax '{name}' cannot be decoded here "
                         f"({type(exc).__name__}); export it uncompressed, or install a decoder for it "
                         "(12-bit JPEG Extended: `pip install pylibjpeg pylibjpeg-libjpeg`, which is GPLv3)") from None
    if pixels.ndim == 3 and ds.get("SamplesPerPixel", 1) == 1:
        pixels = pixels[0]  # multi-frame: the first frame
    if pixels.ndim != 2:
        raise ValueError(f"DICOM image of shape {pixels.shape}: a single grayscale frame is expected")
    values = apply_voi_lut(apply_modality_lut(pixels, ds), ds).astype(np.float64)
    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1" or \
            str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE":
        values = values.max() - values  # low values are bright
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return DicomImage(np.zeros(values.shape, dtype=np.uint8), header_reasons(ds))
    return DicomImage(np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8), header_reasons(ds))
