"""Decompression bombs as a hostile device would send them, made without ever holding their inflated size: a
deflated DX claiming 16384 x 16384 pixels (about 0.5 MB deflated, 512 MB inflated) and a 788-byte RLE image
claiming 65535 x 65535."""

from __future__ import annotations

import zlib
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless, generate_uid

DX = "1.2.840.10008.5.1.4.1.1.1.1"


def _image(side: int, study: str | None) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = DX, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study or generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "BOMB-1", "Bomb^Test", "DX"
    ds.Rows = ds.Columns = side
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    return ds


def _part10(ds: Dataset, syntax: str) -> DicomBytesIO:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    out = DicomBytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    return out


def deflated_bomb(path: Path, side: int = 16384, study: str | None = None) -> Path:
    """A deflated DX of `side` x `side` 16-bit zeros, deflated as a stream."""
    ds = _image(side, study)
    out = _part10(ds, DeflatedExplicitVRLittleEndian)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    size = side * side * 2
    body.write(b"\xe0\x7f\x10\x00OW\x00\x00" + size.to_bytes(4, "little"))
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [out.getvalue(), deflater.compress(body.getvalue())]
    zeros = bytes(2**22)
    for _ in range(size // len(zeros)):
        parts.append(deflater.compress(zeros))
    parts.append(deflater.compress(bytes(size % len(zeros))))
    parts.append(deflater.flush())
    path.write_bytes(b"".join(parts))
    return path


def rle_bomb(path: Path, side: int = 65535, study: str | None = None) -> Path:
    """An RLE Lossless DX claiming `side` x `side` pixels with a few hundred bytes of RLE data."""
    from pydicom.encaps import encapsulate

    ds = _image(side, study)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    header = (1).to_bytes(4, "little") + (64).to_bytes(4, "little") + bytes(56)  # one segment, at byte 64
    segment = bytes([0x81, 0x00]) * 350  # runs of 128 zeros: far fewer than the rows claim
    out = _part10(ds, RLELossless)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    ds.PixelData = encapsulate([header + segment])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    write_dataset(body, ds)
    path.write_bytes(out.getvalue() + body.getvalue())
    return path
