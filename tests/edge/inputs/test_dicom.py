"""DICOM input: built with pydicom, decoded through the image contract."""

import re

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")  # the dev extra installs it; a box without it is tested below

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, SecondaryCaptureImageStorage, generate_uid  # noqa: E402

from cxr_edge.inputs.images import ImageError, load_image  # noqa: E402

RAMP = np.arange(64, dtype=np.float64)[None, :].repeat(32, axis=0)  # left dark, right bright


def write_dicom(path, pixels, bits, photometric="MONOCHROME2", window=None, slope=1.0, intercept=0.0,
                syntax=ExplicitVRLittleEndian, preamble=True):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Patient"  # must never reach a report
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=preamble)
    return path


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_monochrome2_at_each_depth_is_scaled_to_uint8(tmp_path, bits):
    top = 2 ** bits - 1
    pixels = np.rint(RAMP / 63 * top)
    out = load_image(write_dicom(tmp_path / f"ramp{bits}.dcm", pixels, bits))
    assert out.dtype == np.uint8 and out.shape == (32, 64)
    np.testing.assert_array_equal(out, np.rint(RAMP / 63 * 255).astype(np.uint8))


def test_monochrome1_is_inverted(tmp_path):
    pixels = np.rint(RAMP / 63 * 4095)
    out = load_image(write_dicom(tmp_path / "m1.dcm", pixels, 12, photometric="MONOCHROME1"))
    assert out[0, 0] == 255 and out[0, -1] == 0  # low stored values are bright in MONOCHROME1


def test_voi_window_is_applied(tmp_path):
    pixels = np.rint(RAMP / 63 * 4095)  # 0..4095
    plain = load_image(write_dicom(tmp_path / "plain.dcm", pixels, 12))
    windowed = load_image(write_dicom(tmp_path / "win.dcm", pixels, 12, window=(1024, 512)))
    # the window [768, 1280] maps to full contrast: everything left of it is black, right of it white
    inside = (pixels[0] > 800) & (pixels[0] < 1250)
    assert windowed[0, pixels[0] < 700].max() == 0 and windowed[0, pixels[0] > 1350].min() == 255
    assert len(np.unique(windowed[0, inside])) > 3  # graded inside the window
    assert not np.array_equal(plain, windowed)


def test_modality_rescale_is_applied_before_the_window(tmp_path):
    pixels = np.rint(RAMP / 63 * 1000)
    # stored 0..1000 with slope 2, intercept -1000 -> -1000..1000; a window centred on 0 and 400 wide
    out = load_image(write_dicom(tmp_path / "ct.dcm", pixels, 12, window=(0, 400), slope=2.0, intercept=-1000.0))
    real = pixels[0] * 2 - 1000
    assert out[0, real < -250].max() == 0 and out[0, real > 250].min() == 255


def test_extension_less_file_with_preamble_is_found_and_read(tmp_path):
    from cxr_edge.inputs.discover import find_images

    pixels = np.rint(RAMP / 63 * 255)
    write_dicom(tmp_path / "IM0001", pixels, 8)
    (tmp_path / "README").write_text("no preamble, no suffix: skipped")
    assert [p.name for p in find_images(tmp_path)] == ["IM0001"]
    assert load_image(tmp_path / "IM0001").shape == (32, 64)


def test_compressed_syntax_that_cannot_be_decoded_names_the_syntax(tmp_path):
    path = tmp_path / "j2k.dcm"
    pixels = np.rint(RAMP / 63 * 255)
    ds_path = write_dicom(path, pixels, 8)
    ds = pydicom.dcmread(ds_path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00\x01\x02\x03 not a jpeg 2000 stream"])
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ImageError, match=f"transfer syntax '{re.escape(JPEG2000Lossless.name)}' cannot be decoded"):
        load_image(path)


def test_without_pydicom_the_error_says_what_to_install(tmp_path, monkeypatch):
    import builtins

    path = write_dicom(tmp_path / "x.dcm", np.rint(RAMP / 63 * 255), 8)
    real_import = builtins.__import__

    def no_pydicom(name, *args, **kwargs):
        if name == "pydicom" or name.startswith("pydicom."):
            raise ImportError("no pydicom here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pydicom)
    with pytest.raises(ImageError, match=r"pip install 'cxr-edge\[dicom\]'"):
        load_image(path)


def test_damaged_dicom_is_an_image_error(tmp_path):
    path = write_dicom(tmp_path / "bad.dcm", np.rint(RAMP / 63 * 255), 8)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(path) in str(info.value)


@pytest.mark.slow
def test_classify_reads_dicom_and_reports_no_patient_data(tmp_path, edge_bundle, synth_small):
    import json

    from click.testing import CliRunner
    from PIL import Image

    from cxr_edge.cli import main

    stick = tmp_path / "stick"
    stick.mkdir()
    xray = np.asarray(Image.open(synth_small / "COVID/images/COVID-1.png").resize((160, 160))).astype(np.float64)
    write_dicom(stick / "study.dcm", np.rint(xray / 255 * 4095), 12)
    write_dicom(stick / "IM0002", np.rint(xray / 255 * 4095), 12, photometric="MONOCHROME1")
    result = CliRunner().invoke(main, ["classify", str(stick), "--model", str(edge_bundle), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert [r["path"] for r in rows] == ["IM0002", "study.dcm"] and all(r["label"] for r in rows)
    assert "Test^Patient" not in result.output and "Patient" not in result.output


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32])
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("tails", [0.0, 0.005, 0.2])
def test_the_lookup_table_path_gives_the_direct_paths_pixels_bit_for_bit(dtype, inverse, tails):
    """integer_to_uint8 (what DICOM and 16-bit PNGs go through) against to_uint8 over the whole image, for the
    identity, a rescale, a SIGMOID-like window and a non-monotonic LUT, over the full range and percentile ranges
    (taken from sampled rows: 1100 rows, every 2nd); the image contract does not move. The values crowd in the
    middle fifth of their range but for 0.3% of outliers at each extreme, which the percentile ranges cut off."""
    from cxr_edge.inputs.levels import integer_to_uint8, to_uint8

    info = np.iinfo(dtype)
    rng = np.random.default_rng(1)
    lowest, highest = max(info.min, -3000), min(info.max, 4095)
    for shape in ((123, 77), (1100, 9)):
        middle = (lowest + 2 * (highest - lowest) // 5, lowest + 3 * (highest - lowest) // 5)
        pixels = rng.integers(*middle, shape)
        outliers = rng.random(shape)
        pixels[outliers < 0.003], pixels[outliers > 0.997] = lowest, highest
        pixels = pixels.astype(dtype)
        transforms = [None, lambda v: np.asarray(v, np.float64) * 0.7 - 12.5,
                      lambda v: 255 / (1 + np.exp(-4 * (np.asarray(v, np.float64) - 1000) / 3000)),
                      lambda v: np.sin(np.asarray(v, np.float64) / 300)]
        for transform in transforms:
            direct = to_uint8(pixels if transform is None else transform(pixels), inverse, tails=tails)
            assert np.array_equal(integer_to_uint8(pixels, transform, inverse, tails), direct)
            if transform is None:  # the outliers, or the tails, saturate; the crowd spreads over the scale
                assert np.isin(direct, (0, 255)).mean() >= 0.9 * max(0.006, 2 * tails) if tails else \
                    np.ptp(direct[(pixels > lowest) & (pixels < highest)]) < 60
    assert integer_to_uint8(pixels.astype(np.float32)) is None
    assert integer_to_uint8(np.array([0, 70000], np.int32)) is None  # over 16 bits: the direct path


def test_percentiles_come_from_every_5th_row_of_a_full_size_image():
    from cxr_edge.inputs.levels import _sample, to_uint8

    rows = np.arange(2560, dtype=np.float64)[:, None] * np.ones((1, 4))
    assert np.array_equal(_sample(rows)[:, 0], np.arange(0, 2560, 5))
    rows[:10] = -5000  # outliers at the dark end, 8 of the 2048 sampled values: the percentile range is a third
    gray = to_uint8(rows, tails=0.005)  # of the whole; ranks 10 and 2037 of the sample, rows 10 and 2545
    np.testing.assert_array_equal(gray, np.clip(np.rint((rows - 10) * 255 / 2535), 0, 255))
    np.testing.assert_array_equal(to_uint8(rows[10:], tails=0.005), to_uint8(rows[10:]))  # no outliers: full range
