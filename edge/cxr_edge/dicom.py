"""DICOM radiographs (needs the `dicom` extra, pydicom): pixel data with the modality LUT and the VOI LUT or
window applied, MONOCHROME1 inverted, then scaled to the image contract's 2-D uint8.

Nothing but pixels is read into results: reports never carry patient data from the DICOM header.
"""

from __future__ import annotations

import os
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


def load_dicom(path: os.PathLike | str) -> np.ndarray:
    """The first frame as 2-D uint8 grayscale. Raises ValueError with a message naming the problem."""
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:
        raise ValueError("a DICOM file, and pydicom is not installed: run `pip install 'cxr-edge[dicom]'`") from None
    try:
        ds = pydicom.dcmread(path, force=Path(path).suffix.lower() == ".dcm")
    except Exception as exc:  # pydicom raises many types for a damaged file
        raise ValueError(f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    if "PixelData" not in ds:
        raise ValueError("a DICOM file with no pixel data (not an image)")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        name = getattr(syntax, "name", str(syntax))
        raise ValueError(f"DICOM pixel data in transfer syntax '{name}' cannot be decoded here "
                         f"({type(exc).__name__}); export it uncompressed or install a decoder plugin") from None
    if pixels.ndim == 3 and ds.get("SamplesPerPixel", 1) == 1:
        pixels = pixels[0]  # multi-frame: the first frame
    if pixels.ndim != 2:
        raise ValueError(f"DICOM image of shape {pixels.shape}: a single grayscale frame is expected")
    values = apply_voi_lut(apply_modality_lut(pixels, ds), ds).astype(np.float64)
    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        values = values.max() - values  # MONOCHROME1: low values are bright
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)
