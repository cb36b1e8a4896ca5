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
    meta.MediaStorageSOPInstanceUID = header.get("SOPInstanceUID", meta.MediaStorageSOPInstanceUID)
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


LOSSY = {"jpeg-baseline", "jpeg-extended-12", "jpeg-ls-near", "j2k"}
CHEST = {"CodeValue": "51185008", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Chest"}


def unit_header(study: str, series: str, number: int, sex: str, bits: int, lossy: bool) -> dict:
    """What a DR unit writes about a PA chest image, beyond the pixels (every attribute the DX IOD asks for, so that
    dciodvfy accepts the file): the study and series, the anatomy, the detector, the window over `bits`."""
    from pydicom.dataset import Dataset

    region = Dataset()
    for keyword, value in CHEST.items():
        setattr(region, keyword, value)
    top = 2 ** bits
    return {"StudyInstanceUID": study, "SeriesInstanceUID": series, "StudyTime": "093000",
            "ReferringPhysicianName": "", "StudyID": "1", "AccessionNumber": f"SYN{number:06d}",
            "StudyDescription": "XR CHEST PA", "SeriesNumber": 1, "InstanceNumber": 1,
            "PatientSex": sex, "Manufacturer": "cxr-edge synthetic unit", "PatientOrientation": ["L", "F"],
            "AnatomicRegionSequence": [region], "ImageLaterality": "U", "BodyPartExamined": "CHEST",
            "ViewPosition": "PA", "ImageType": ["ORIGINAL", "PRIMARY"], "PixelIntensityRelationship": "LIN",
            "PixelIntensityRelationshipSign": 1, "RescaleIntercept": 0, "RescaleSlope": 1, "RescaleType": "US",
            "PresentationLUTShape": "IDENTITY", "LossyImageCompression": "01" if lossy else "00",
            "BurnedInAnnotation": "NO", "WindowCenter": top // 2, "WindowWidth": top, "DetectorType": "SCINTILLATOR",
            "ImagerPixelSpacing": [0.14, 0.14], "PositionerType": "NONE", "AcquisitionContextSequence": []}


def write_unit_dataset(out: os.PathLike | str, per_class: int, size: int = 299, seed: int = 0,
                       syntaxes: tuple[str, ...] = ("explicit",)) -> list[Path]:
    """The synthetic images (cxr_train.synth, the same pictures as the PNGs for `seed`) as a DR unit would send them:
    12-bit DX files (8-bit for baseline JPEG) with realistic headers (unit_header), each a made-up patient in a study
    of its own, in the transfer syntaxes named (SYNTAXES' short names), taken in turn. <out>/<Class>/images/
    <Class>-<n>.dcm; returns the files written."""
    from cxr_edge.labels import DATABASE_FOLDERS, LABELS

    from .synth import image_rng, make_image

    unknown = [name for name in syntaxes if name not in SYNTAXES]
    if unknown:
        raise ValueError(f"unknown transfer syntax {unknown[0]!r}: one of {', '.join(SYNTAXES)}")
    out, written, number = Path(out), [], 0
    for label in LABELS:
        folder = out / DATABASE_FOLDERS[label] / "images"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, per_class + 1):
            number += 1
            name = syntaxes[(number - 1) % len(syntaxes)]
            bits = 8 if name == "jpeg-baseline" else 12
            pixels = make_image(label, size, image_rng(seed, label, i)).pixels.astype(np.uint16)
            stored = pixels if bits == 8 else pixels * 16 + 8  # 12 bits, as a detector's values
            uid = lambda part: uids.generate_uid(entropy_srcs=[str(seed), label, str(i), part])  # noqa: E731
            patient = {"PatientName": f"Synthetic^{DATABASE_FOLDERS[label].title()}^{i}",
                       "PatientID": f"SYN-{number:05d}", "PatientBirthDate": f"{1950 + number % 60}0101"}
            header = unit_header(uid("study"), uid("series"), number, "FM"[number % 2], bits, name in LOSSY)
            path = folder / f"{DATABASE_FOLDERS[label]}-{i}.dcm"
            written.append(write_dicom(path, stored, bits, SYNTAXES[name], SOPInstanceUID=uid("image"),
                                       **patient, **header))
    return written


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
