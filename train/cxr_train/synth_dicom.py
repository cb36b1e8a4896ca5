"""Synthetic radiographs as DICOM files, in the transfer syntaxes X-ray units write: for the tests, the
Raspberry Pi kit and the clinic benchmark. Every file carries made-up patient data (PATIENT), which no report
may ever show. Compressed syntaxes are written by GDCM (in cxr-edge's base install), as a unit's encoder would,
but 12-bit JPEG Extended by libjpeg-turbo (imagecodecs); the uncompressed ones and RLE by pydicom."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid as uids
from pydicom.dataset import Dataset, FileMetaDataset

PATIENT = {"PatientName": "Test^Patient", "PatientID": "PID-0042", "PatientBirthDate": "19700101",
           "StudyDate": "20260101"}
# The syntaxes a DR console or CR reader writes, by short name.
SYNTAXES = {"explicit": uids.ExplicitVRLittleEndian, "implicit": uids.ImplicitVRLittleEndian,
            "deflated": uids.DeflatedExplicitVRLittleEndian, "rle": uids.RLELossless,
            "jpeg-baseline": uids.JPEGBaseline8Bit, "jpeg-extended-12": uids.JPEGExtended12Bit,
            "jpeg-lossless": uids.JPEGLossless,
            "jpeg-lossless-sv1": uids.JPEGLosslessSV1, "jpeg-ls": uids.JPEGLSLossless,
            "jpeg-ls-near": uids.JPEGLSNearLossless, "j2k-lossless": uids.JPEG2000Lossless, "j2k": uids.JPEG2000}


def write_dicom(path: os.PathLike | str, pixels: np.ndarray, bits: int = 12,
                syntax: str = uids.ExplicitVRLittleEndian, **header) -> Path:
    """A DX image of `pixels` (stored values, 0..2**bits - 1) in `syntax`, with PATIENT and `header` set."""
    path = Path(path)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = uids.DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = uids.generate_uid()
    meta.TransferSyntaxUID = uids.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PresentationIntentType = "DX", "FOR PRESENTATION"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PixelData = pixels.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    for keyword, value in {**PATIENT, **header}.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    if syntax != uids.ExplicitVRLittleEndian:
        transcode(path, syntax)
    return path


def transcode(path: os.PathLike | str, syntax: str) -> None:
    """Rewrite a DICOM file in place in another transfer syntax."""
    syntax = uids.UID(syntax)
    if syntax in (uids.ImplicitVRLittleEndian, uids.DeflatedExplicitVRLittleEndian, uids.RLELossless):
        ds = pydicom.dcmread(path)
        if syntax == uids.RLELossless:
            ds.compress(syntax)
        else:
            ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(path, enforce_file_format=True, implicit_vr=syntax == uids.ImplicitVRLittleEndian)
        return
    if syntax == uids.JPEGExtended12Bit:  # GDCM writes it with 16-bit precision, which the standard does not allow
        import imagecodecs
        from pydicom.encaps import encapsulate

        ds = pydicom.dcmread(path)
        ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(ds.pixel_array, level=90, bitspersample=12)])
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(path, enforce_file_format=True)
        return
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(str(syntax))))
    if not reader.Read():
        raise ValueError(f"GDCM cannot read {path}")
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise ValueError(f"GDCM cannot write {syntax.name} for {path}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(path))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise ValueError(f"GDCM cannot write {path}")
