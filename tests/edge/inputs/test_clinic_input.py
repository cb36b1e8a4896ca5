"""What X-ray units write to a stick: every common DICOM transfer syntax from the base install, an IHE PDI
export (DICOMDIR, nested extension-less files, non-image objects), header-based referral, and file names that
are not valid UTF-8."""

import csv
import io
import json
import os
import re

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pydicom import uid as uids

from cxr_edge.cli import main
from cxr_edge.inputs.images import NotAnImage, load_image, load_radiograph
from cxr_train.synth_dicom import PATIENT, write_dicom

LOSSLESS = [uids.ImplicitVRLittleEndian, uids.DeflatedExplicitVRLittleEndian, uids.RLELossless,
            uids.JPEGLossless, uids.JPEGLosslessSV1, uids.JPEGLSLossless, uids.JPEG2000Lossless]
LOSSY = [uids.JPEGLSNearLossless, uids.JPEG2000, uids.JPEGExtended12Bit]


def _radiograph(size=160, seed=0):
    """A 12-bit grayscale radiograph-like image: smooth anatomy-like structure plus noise."""
    from cxr_train.synth import image_rng, make_image

    pixels = make_image("covid19", 299, image_rng(seed, "covid19", 0)).pixels
    small = np.asarray(Image.fromarray(pixels).resize((size, size)), np.float64)
    return np.rint(small / 255 * 4095)


@pytest.mark.parametrize("syntax", LOSSLESS + LOSSY, ids=lambda s: s.name)
def test_every_common_transfer_syntax_decodes_like_the_uncompressed_original(tmp_path, syntax):
    pixels = _radiograph()
    original = load_image(write_dicom(tmp_path / "plain.dcm", pixels))
    decoded = load_image(write_dicom(tmp_path / "coded.dcm", pixels, syntax=syntax))
    if syntax in LOSSLESS:
        np.testing.assert_array_equal(decoded, original)
    else:  # lossy: close, as the unit's own viewer would show it
        assert np.abs(decoded.astype(int) - original).mean() < 2.0


@pytest.mark.parametrize("syntax", [uids.JPEGLossless, uids.JPEGLosslessSV1, uids.JPEGExtended12Bit],
                         ids=lambda s: s.name)
def test_lossless_and_12_bit_jpeg_are_decoded_by_libjpeg_turbo(tmp_path, syntax, monkeypatch):
    """Not through pydicom's plugins (GDCM: five times slower on lossless, holding Python's lock; no 12-bit
    Extended at all)."""
    import cxr_edge.inputs.dicom

    pixels = _radiograph()
    path = write_dicom(tmp_path / "coded.dcm", pixels, syntax=syntax)
    expected = load_image(path)
    monkeypatch.setattr(cxr_edge.inputs.dicom, "_pixel_array", lambda ds: pytest.fail("decoded through pydicom"))
    np.testing.assert_array_equal(load_image(path), expected)


def test_jpeg_baseline_8_bit(tmp_path):
    pixels = np.rint(_radiograph() / 4095 * 255)
    original = load_image(write_dicom(tmp_path / "plain.dcm", pixels, bits=8))
    decoded = load_image(write_dicom(tmp_path / "jpeg.dcm", pixels, bits=8, syntax=uids.JPEGBaseline8Bit))
    assert np.abs(decoded.astype(int) - original).mean() < 3.0


def test_header_safety_reasons_name_no_header_value(tmp_path):
    pixels = _radiograph()
    cases = {"frontal": {"ViewPosition": "PA", "BodyPartExamined": "CHEST"},
             "lateral": {"ViewPosition": "LL"}, "skull": {"BodyPartExamined": "SKULL"},
             "ct": {"Modality": "CT"}, "raw": {"PresentationIntentType": "FOR PROCESSING"}}
    reasons = {name: [r.words() for r in load_radiograph(write_dicom(tmp_path / f"{name}.dcm", pixels, **header))[1]]
               for name, header in cases.items()}
    assert reasons["frontal"] == []
    assert "not a frontal view" in reasons["lateral"][0]
    assert "body part other than the chest" in reasons["skull"][0]
    assert "modality other than radiography" in reasons["ct"][0]
    assert "for processing" in reasons["raw"][0]
    assert not any(value in " ".join(sum(reasons.values(), [])) for value in ("SKULL", "CT", " LL"))


def test_presentation_lut_shape_inverse_is_inverted(tmp_path):
    pixels = _radiograph()
    plain = load_image(write_dicom(tmp_path / "plain.dcm", pixels))
    inverse = load_image(write_dicom(tmp_path / "inverse.dcm", pixels, PresentationLUTShape="INVERSE"))
    assert np.abs(inverse.astype(int) - (255 - plain)).max() <= 1  # rounding at .5 may go the other way


def _pdi_stick(tmp_path):
    """An IHE PDI export as a DR console writes it: DICOMDIR at the root, extension-less files in nested
    folders, one image per common syntax, a structured report, a lateral view, MONOCHROME1, a SIGMOID window."""
    from pydicom.fileset import FileSet

    staging = tmp_path / "staging"
    staging.mkdir()
    pixels = _radiograph()
    files = [write_dicom(staging / f"{i}.dcm", pixels, syntax=syntax, ViewPosition="PA")
             for i, syntax in enumerate([uids.ExplicitVRLittleEndian, uids.JPEGLosslessSV1, uids.JPEGLSLossless,
                                         uids.JPEG2000Lossless, uids.RLELossless])]
    files.append(write_dicom(staging / "lateral.dcm", pixels, ViewPosition="LL"))
    files.append(write_dicom(staging / "m1.dcm", pixels, PhotometricInterpretation="MONOCHROME1"))
    files.append(write_dicom(staging / "sigmoid.dcm", pixels, WindowCenter=2048, WindowWidth=3000,
                        VOILUTFunction="SIGMOID"))
    sr = pydicom.dcmread(files[0])
    del sr.PixelData
    sr.SOPClassUID = sr.file_meta.MediaStorageSOPClassUID = uids.BasicTextSRStorage
    sr.SOPInstanceUID = sr.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    sr.Modality = "SR"
    sr.CompletionFlag, sr.VerificationFlag = "COMPLETE", "UNVERIFIED"
    sr.ContentDate, sr.ContentTime = "20260101", "120000"
    code = pydicom.Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "18748-4", "LN", "Diagnostic imaging report"
    sr.ConceptNameCodeSequence = [code]
    sr.save_as(staging / "sr.dcm", enforce_file_format=True)
    files.append(staging / "sr.dcm")
    fileset = FileSet()
    study = {"StudyInstanceUID": pydicom.uid.generate_uid(), "StudyTime": "120000", "StudyID": "1",
             "AccessionNumber": "A1", "SeriesInstanceUID": pydicom.uid.generate_uid(), "SeriesNumber": 1}
    for number, f in enumerate(files, 1):
        ds = pydicom.dcmread(f)
        for keyword, value in {**study, "InstanceNumber": number}.items():
            setattr(ds, keyword, value)
        ds.save_as(f, enforce_file_format=True)
        fileset.add(f)
    stick = tmp_path / "stick"
    fileset.write(stick)
    (stick / "EXPORT.DCM").write_bytes(files[0].read_bytes())  # suffixes in any case
    (stick / "autorun.inf").write_text("[autorun]\nopen=viewer.exe\n")
    (stick / "index.htm").write_text("<html>viewer</html>")
    return stick


@pytest.mark.slow
def test_a_pdi_stick_through_classify(tmp_path, edge_bundle):
    stick = _pdi_stick(tmp_path)
    assert (stick / "DICOMDIR").exists()
    with pytest.raises(NotAnImage, match="DICOMDIR"):
        load_image(stick / "DICOMDIR")
    outputs = {}
    for suffix in (".csv", ".json", ".jsonl", ".html"):
        report = tmp_path / f"report{suffix}"
        result = CliRunner().invoke(main, ["classify", str(stick), "--model", str(edge_bundle), "--format", "table",
                                           "--output", str(report)])
        assert result.exit_code == 0, result.output  # nothing is wrong with the stick: every image classified
        # the HTML's pictures are base64: a short value could turn up in them by chance
        outputs[suffix] = re.sub(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+", "", report.read_text())
        outputs["table"] = result.output
    data = json.loads(outputs[".json"])
    rows = data["results"]
    assert len(rows) == 9 and all(r["label"] and not r["error"] for r in rows)  # DICOMDIR and the SR are no rows
    assert "EXPORT.DCM" in [r["path"] for r in rows]
    # autorun.inf and index.htm are not images; the DICOMDIR and the SR are DICOM objects that are not images
    assert data["summary"]["skipped"] == {"Basic Text SR": 1, "DICOMDIR": 1, "not an image": 2}
    assert "skipped 4 files not classified (Basic Text SR 1, DICOMDIR 1, not an image 2)" in outputs["table"]
    referred = [r for r in rows if "not a frontal view" in r["reason"]]
    assert len(referred) == 1 and referred[0]["refer"]
    for text in outputs.values():
        for value in (*PATIENT.values(), "Test", "PID"):
            assert value not in text
    # the same pixels in five lossless syntaxes (the lateral view and the upper-case copy too) give the same
    # probabilities
    from collections import Counter

    assert Counter(r["p_normal"] for r in rows).most_common(1)[0][1] >= 7


@pytest.mark.slow
def test_file_names_that_are_not_utf8_reach_every_report_form(tmp_path, edge_bundle, synth_small):
    stick = tmp_path / "stick"
    stick.mkdir()
    odd = os.fsdecode(b"caf\xff-\xe9.png")  # bytes a FAT stick written under another code page leaves
    Image.open(synth_small / "Normal/images/Normal-1.png").resize((160, 160)).save(stick / odd)
    Image.open(synth_small / "COVID/images/COVID-1.png").resize((160, 160)).save(stick / "plain.png")
    for suffix in (".csv", ".json", ".jsonl", ".html"):
        report = tmp_path / f"report{suffix}"
        for _ in range(2):  # the second run resumes from nothing and writes again
            result = CliRunner().invoke(main, ["classify", str(stick), "--model", str(edge_bundle),
                                               "--format", "table", "--output", str(report)])
            assert result.exit_code == 0, result.output
        text = report.read_text(encoding="utf-8")
        shown = "caf\\xff-\\xe9.png"  # escaped, and still enough to find the file
        assert (shown if suffix in (".csv", ".html") else json.dumps(shown)) in text
    rows = list(csv.DictReader(io.StringIO("\n".join(
        line for line in (tmp_path / "report.csv").read_text().splitlines() if not line.startswith("#")))))
    assert sorted(r["path"] for r in rows) == ["caf\\xff-\\xe9.png", "plain.png"]
    assert all(r["label"] for r in rows)


def test_formula_like_file_names_are_text_in_the_csv_and_as_they_are_in_json(tmp_path, edge_bundle, synth_small):
    """A stick's file names are whoever made the stick's: in the CSV a name a spreadsheet would run gets a leading
    apostrophe (OWASP's CSV-injection advice), and JSON keeps it as it is. (A file name holds no "/", so the
    formula here names a host without a scheme.)"""
    stick = tmp_path / "stick"
    stick.mkdir()
    names = ['=HYPERLINK("example.invalid","click").png', "+cmd.png", "-2.png", "@sum.png", "'quoted.png",
             "plain.png"]
    image = Image.open(synth_small / "Normal/images/Normal-1.png").resize((160, 160))
    for name in names:
        image.save(stick / name)
    report = tmp_path / "report.csv"
    result = CliRunner().invoke(main, ["classify", str(stick), "--model", str(edge_bundle), "--format", "json",
                                       "--output", str(report)])
    assert result.exit_code == 0, result.output
    assert sorted(r["path"] for r in json.loads(result.stdout)["results"]) == sorted(names)
    rows = list(csv.DictReader(line for line in report.read_text().splitlines() if not line.startswith("#")))
    cells = sorted(r["path"] for r in rows)
    assert cells == sorted("'" + n if n != "plain.png" else n for n in names)
    assert all(r["label"] and not r["label"].startswith("'") for r in rows)


def test_a_split_file_keeps_formula_like_names_exactly(tmp_path):
    from cxr_train.dataset import Record, read_split, write_split

    records = [Record(name, "normal", f"{i:064x}", "train") for i, name in
               enumerate(["=1+1.png", "'already.png", "-x.png", "\tab.png", "plain.png"])]
    write_split(records, tmp_path / "split.csv")
    text = (tmp_path / "split.csv").read_text()
    assert "\n'=1+1.png," in text and "\n''already.png," in text
    assert read_split(tmp_path / "split.csv") == records


@given(st.text())
def test_safe_cells_round_trip_and_never_start_a_formula(text):
    from cxr_edge.csv_cells import FORMULA_STARTS, plain, safe

    assert plain(safe(text)) == text
    assert not safe(text).startswith(FORMULA_STARTS)


def test_an_image_object_without_its_pixels_is_an_error_not_a_skip(tmp_path):
    path = write_dicom(tmp_path / "broken.dcm", _radiograph())
    ds = pydicom.dcmread(path)
    del ds.PixelData  # a DX image whose pixels were lost: damaged, and never silently left out
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(Exception) as caught:
        load_image(path)
    assert not isinstance(caught.value, NotAnImage) and "no pixel data" in str(caught.value)


def test_vendor_quirks_are_survived(tmp_path):
    """JPEG Lossless data labelled as JPEG baseline, JPEG data left unencapsulated under a native syntax, and a
    file with no file meta header: each decodes to the original's pixels."""
    from pydicom.encaps import generate_fragments

    pixels = _radiograph()
    original = load_image(write_dicom(tmp_path / "plain.dcm", pixels))
    mislabelled = write_dicom(tmp_path / "mislabelled.dcm", pixels, syntax=uids.JPEGLosslessSV1)
    ds = pydicom.dcmread(mislabelled)
    ds.file_meta.TransferSyntaxUID = uids.JPEGBaseline8Bit
    ds.save_as(mislabelled, enforce_file_format=True)
    np.testing.assert_array_equal(load_image(mislabelled), original)

    bare = tmp_path / "bare.dcm"
    ds = pydicom.dcmread(write_dicom(bare, pixels, syntax=uids.JPEGLosslessSV1))
    codestream = b"".join(generate_fragments(ds.PixelData))
    ds.file_meta.TransferSyntaxUID = uids.ExplicitVRLittleEndian
    ds.PixelData = codestream
    ds["PixelData"].VR = "OB"
    ds.save_as(bare, enforce_file_format=True)
    np.testing.assert_array_equal(load_image(bare), original)

    no_meta = tmp_path / "no-meta.dcm"
    ds = pydicom.dcmread(tmp_path / "plain.dcm")
    del ds.file_meta
    ds.preamble = None
    ds.save_as(no_meta, implicit_vr=True, little_endian=True)
    assert not no_meta.read_bytes()[128:132] == b"DICM"
    np.testing.assert_array_equal(load_image(no_meta), original)


def test_each_voi_lut_function_shapes_the_window(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 256), (160, 1)).round()
    window = {"WindowCenter": 2048, "WindowWidth": 1024}
    out = {function: load_image(write_dicom(tmp_path / f"{function}.dcm", ramp, VOILUTFunction=function, **window))[0]
           for function in ("LINEAR", "LINEAR_EXACT", "SIGMOID")}
    for function, row in out.items():
        assert (np.diff(row.astype(int)) >= 0).all(), function  # monotonic, dark to bright
        assert row[0] == 0 and row[-1] == 255
    linear, sigmoid = out["LINEAR"].astype(int), out["SIGMOID"].astype(int)
    assert (linear[:80] == 0).all() and (sigmoid[:80] > 0).any()  # a sigmoid never clips as hard as a ramp


def test_image_contract_3_changes_only_large_jpeg_and_jpeg2000(tmp_path):
    """Version 2 decodes a JPEG over twice the model size at a reduced scale, version 3 a JPEG 2000 DICOM at a
    reduced resolution; everything else keeps version 1's pixels (full decode, then bilinear to the model size)."""
    from cxr_edge.inputs.images import prepare

    def version_1(path, size):
        gray = load_image(path)  # no size: full decode
        return np.asarray(Image.fromarray(gray).resize((size, size), Image.Resampling.BILINEAR))[:, :, None]

    big = np.asarray(Image.fromarray(_radiograph().astype(np.float32), "F").resize((1200, 1200)))
    eight = Image.fromarray(np.rint(big / 4095 * 255).astype(np.uint8))
    eight.save(tmp_path / "big.jpg", quality=92)
    eight.resize((128, 128)).save(tmp_path / "small.jpg", quality=92)  # up to twice the size: untouched
    Image.fromarray((big * 16).astype(np.uint16)).save(tmp_path / "big16.png")
    write_dicom(tmp_path / "big.dcm", np.rint(big))
    for name in ("small.jpg", "big16.png", "big.dcm"):
        np.testing.assert_array_equal(prepare(tmp_path / name, 64), version_1(tmp_path / name, 64), err_msg=name)
    write_dicom(tmp_path / "big-j2k.dcm", np.rint(big), syntax=uids.JPEG2000Lossless)
    write_dicom(tmp_path / "small-j2k.dcm", np.rint(big[::10, ::10]), syntax=uids.JPEG2000Lossless)
    np.testing.assert_array_equal(prepare(tmp_path / "small-j2k.dcm", 64), version_1(tmp_path / "small-j2k.dcm", 64))
    # the model input moves by under 2 gray levels on average; what that does to a bundle's outputs:
    # benchmarks/contract_change.py, in docs/benchmarks.md
    for name in ("big.jpg", "big-j2k.dcm"):
        reduced, full = prepare(tmp_path / name, 64).astype(int), version_1(tmp_path / name, 64).astype(int)
        assert not np.array_equal(reduced, full) and np.abs(reduced - full).mean() < 2.0, name
    # 1200 px, never below 512 (nor twice the model size): one wavelet level discarded, 600 px decoded
    assert load_radiograph(tmp_path / "big-j2k.dcm", 64)[0].shape == (600, 600)


def test_with_no_window_a_percentile_range_so_a_few_hot_pixels_cannot_darken_the_image(tmp_path):
    """Anatomy stored in 0..1000 of 12 bits, and a 20x20 burned-in marker at 4095 (0.4% of the pixels). The
    image's minimum..maximum (contract 3) would leave the anatomy 0..62 of 255; the 0.5th..99.5th percentile range
    gives it the whole scale. Without the marker, whose tails are anatomy, the image keeps its minimum..maximum, as
    does a 16-bit PNG (contract 4 is DICOM's). A window in the header is taken as it stands, marker or not."""
    from cxr_edge.inputs.levels import to_uint8

    anatomy = np.rint(_radiograph(320) / 4095 * 1000)
    np.testing.assert_array_equal(load_image(write_dicom(tmp_path / "plain.dcm", anatomy)), to_uint8(anatomy))
    marked = anatomy.copy()
    marked[10:30, 10:30] = 4095
    gray = load_image(write_dicom(tmp_path / "marked.dcm", marked))
    assert (gray[10:30, 10:30] == 255).all()
    assert np.percentile(gray[40:], 99) >= 230 and np.percentile(gray[40:], 1) <= 5
    lo, hi = np.percentile(marked, [0.5, 99.5])  # the whole image's; the range comes from every row here (320)
    expected = np.clip((anatomy - lo) * 255 / (hi - lo), 0, 255)
    assert np.abs(gray[40:].astype(int) - expected[40:]).mean() < 1.0

    Image.fromarray(marked.astype(np.uint16)).save(tmp_path / "marked16.png")  # not DICOM: its own range, as before
    np.testing.assert_array_equal(load_image(tmp_path / "marked16.png"), to_uint8(marked))

    windowed = load_image(write_dicom(tmp_path / "windowed.dcm", marked, WindowCenter=2047.5, WindowWidth=4096))
    assert np.percentile(windowed[40:], 99) < 70  # the header's window: the marker's range, as the unit chose

    constant = np.zeros((320, 320))  # 99.6% one value: the percentiles coincide, so the full range is used
    constant[100:120, 100:120] = 800
    square = load_image(write_dicom(tmp_path / "square.dcm", constant))
    assert (square[100:120, 100:120] == 255).all() and square.sum() == 255 * 400


def test_openjpeg_decodes_with_every_core_unless_told_otherwise():
    """Pillow's OpenJPEG holds Python's lock, so JPEG 2000 gains from OpenJPEG's own threads, not from a second
    decode thread; a site's own OPJ_NUM_THREADS is kept."""
    import subprocess
    import sys

    code = "import os, cxr_edge.inputs.dicom; print(os.environ['OPJ_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPJ_NUM_THREADS"}
    ours = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert ours.stdout.strip() == str(os.cpu_count())
    theirs = subprocess.run([sys.executable, "-c", code], env={**env, "OPJ_NUM_THREADS": "1"},
                            capture_output=True, text=True, check=True)
    assert theirs.stdout.strip() == "1"


def test_a_text_file_named_dcm_is_not_called_a_dicom_file(tmp_path):
    fake = tmp_path / "fake.dcm"
    fake.write_text("appointment list, not an image\n" * 4)
    with pytest.raises(Exception) as caught:
        load_image(fake)
    assert str(caught.value) == (f"{fake}: not a DICOM file: no DICOM header in it (another kind of file with a "
                                 ".dcm name?); export the image from the X-ray unit again")


# pydicom's own test corpus: DICOM objects that hold no image by design, which units and planning systems put
# on the same sticks (the RT Ion Plans are the same plan in two encodings without file meta information).
NOT_IMAGES = {"rtplan.dcm": "RT Plan", "rtplan_truncated.dcm": "RT Plan", "rtstruct.dcm": "RT Structure Set",
              "waveform_ecg.dcm": "12-lead ECG Waveform", "ExplVR_BigEndNoMeta.dcm": "RT Ion Plan",
              "ExplVR_LitEndNoMeta.dcm": "RT Ion Plan"}


@pytest.mark.slow
def test_rt_plans_structure_sets_and_ecgs_are_skipped_and_counted(tmp_path, edge_bundle, synth_small):
    from pydicom.data import get_testdata_file

    stick = tmp_path / "stick"
    stick.mkdir()
    for name, kind in NOT_IMAGES.items():
        (stick / name).write_bytes(open(get_testdata_file(name), "rb").read())
        with pytest.raises(NotAnImage, match=f"^.*{kind}: not an image$"):
            load_image(stick / name)
    Image.open(synth_small / "Normal/images/Normal-1.png").save(stick / "chest.png")
    report = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["classify", str(stick), "--model", str(edge_bundle), "--output", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert [r["path"] for r in data["results"]] == ["chest.png"]  # no error row for any of the six
    assert data["summary"]["skipped"] == {"12-lead ECG Waveform": 1, "RT Ion Plan": 2, "RT Plan": 2,
                                          "RT Structure Set": 1}
    assert ("skipped 6 files not classified (12-lead ECG Waveform 1, RT Ion Plan 2, RT Plan 2, "
            "RT Structure Set 1)") in result.output


def test_an_image_class_without_pixel_data_is_still_an_error(tmp_path):
    ds = pydicom.Dataset()
    ds.SOPClassUID = uids.DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = uids.generate_uid()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = uids.ExplicitVRLittleEndian
    ds.save_as(tmp_path / "damaged.dcm", enforce_file_format=True)
    with pytest.raises(ValueError, match="a DICOM file with no pixel data \\(damaged, or not an image\\)"):
        load_image(tmp_path / "damaged.dcm")
