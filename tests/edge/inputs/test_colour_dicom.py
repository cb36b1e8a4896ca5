"""Colour DICOM (a secondary capture of a screen, a digitised film) made gray by the image contract exactly as a
colour PNG or JPEG is, classified, and referred when its header says it is no chest radiograph."""

import numpy as np
from click.testing import CliRunner
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cxr_edge.cli import main
from cxr_edge.inputs.dicom import read_dicom
from cxr_edge.inputs.images import load_image


def _rgb_secondary_capture(path, rgb: np.ndarray, modality: str = "DX"):
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), modality
    ds.BodyPartExamined, ds.ViewPosition = "CHEST", "PA"
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_colour_dicom_is_as_gray_as_the_same_colour_png(tmp_path, synth_small):
    gray = np.asarray(Image.open(synth_small / "COVID/images/COVID-1.png").convert("L").resize((300, 280)))
    tint = np.stack([gray, (gray * 0.8).astype(np.uint8), (gray * 0.6).astype(np.uint8)], axis=2)  # a sepia scan
    Image.fromarray(tint, "RGB").save(tmp_path / "scan.png")
    dicom = read_dicom(_rgb_secondary_capture(tmp_path / "scan.dcm", tint))
    assert np.array_equal(dicom.pixels, load_image(tmp_path / "scan.png"))  # the contract's weights, bit for bit
    assert dicom.refer == []  # a chest PA, says its header


def test_pydicom_s_colour_files_are_read_and_classified_and_a_non_chest_one_referred(tmp_path, edge_bundle):
    j2k = read_dicom(get_testdata_file("GDCMJ2K_TextGBR.dcm"))  # colour JPEG 2000
    assert j2k.pixels.ndim == 2 and j2k.pixels.dtype == np.uint8 and j2k.pixels.std() > 1
    stick = tmp_path / "stick"
    stick.mkdir()
    for name in ("GDCMJ2K_TextGBR.dcm", "SC_rgb_jpeg_dcmtk.dcm"):
        (stick / name).write_bytes(open(get_testdata_file(name), "rb").read())
    shown = CliRunner().invoke(main, ["classify", str(stick), "--model", str(edge_bundle), "--format", "csv"])
    assert shown.exit_code == 0, shown.output  # both classified, no error row
    rows = [line for line in shown.stdout.splitlines() if line.endswith(".dcm") or ".dcm," in line]
    assert len(rows) == 2 and "modality" in next(r for r in rows if r.startswith("SC_rgb"))
