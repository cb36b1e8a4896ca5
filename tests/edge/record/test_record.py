"""Results into the record from `cxr-edge classify --sr DIR --fhir DIR`: every SR and secondary capture is judged
by dicom3tools' dciodvfy (no error line) and read by dcmtk's dsrdump; every FHIR Bundle is parsed by fhir.resources'
R4B models. The sources include what real units write: no patient ID, no study UID, a non-ASCII name, 64-character
UIDs, several transfer syntaxes."""

import json
import subprocess

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from PIL import Image
from pydicom import uid as uids

from cxr_edge import DISCLAIMER
from cxr_edge.cli import main
from cxr_edge.labels import LABELS
from cxr_edge.record.codes import LABEL_CODES, PROBABILITY_CODES
from cxr_train.synth_dicom import PATIENT, write_dicom

from tests.peers import tool

LONG_UID = "1.2.826.0.1.3680043.8.498." + "1" * 38  # 64 characters, the most a UID may have
STUDY = uids.generate_uid()


def _stick(tmp_path, synth_small):
    """Five DICOM radiographs as units write them, and one PNG."""
    stick = tmp_path / "stick"
    (stick / "ward").mkdir(parents=True)
    names = sorted(synth_small.glob("*/images/*.png"))

    def gray(i):
        return np.asarray(Image.open(names[i * 7 % len(names)]).convert("L").resize((256, 256)), np.uint16) * 16

    common = {"StudyInstanceUID": STUDY, "SeriesInstanceUID": uids.generate_uid(), "ViewPosition": "PA"}
    write_dicom(stick / "plain.dcm", gray(0), **common, AccessionNumber="ACC-7", StudyTime="101500")
    write_dicom(stick / "ward" / "jpeg-ls.dcm", gray(1), syntax=uids.JPEGLSLossless, **common)
    write_dicom(stick / "no-study.dcm", gray(2), ViewPosition="PA")  # no Study or Series Instance UID
    named = write_dicom(stick / "accented.dcm", gray(3), **common, SpecificCharacterSet="ISO_IR 192",
                        PatientName="Müller^Zoë")
    ds = pydicom.dcmread(named)
    del ds.PatientID  # Type 2: units leave it out
    ds.save_as(named)
    long = write_dicom(stick / "long-uid.dcm", gray(4), **{**common, "StudyInstanceUID": LONG_UID})
    ds = pydicom.dcmread(long)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = LONG_UID[:-1] + "2"
    ds.save_as(long)
    dated = write_dicom(stick / "dashed-date.dcm", gray(5), **common)
    ds = pydicom.dcmread(dated)
    ds.PatientBirthDate = "1970-01-01"  # how some units write a DA: not DICOM's 19700101
    ds.save_as(dated)
    Image.open(names[5]).resize((200, 200)).save(stick / "photo.png")
    return stick


def _classify(stick, bundle, out):
    result = CliRunner().invoke(main, ["classify", str(stick), "--model", str(bundle), "--format", "json",
                                       "--sr", str(out / "sr"), "--fhir", str(out / "fhir")])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def written(tmp_path_factory, edge_bundle, synth_small):
    tmp = tmp_path_factory.mktemp("record")
    stick = _stick(tmp, synth_small)
    before = {p: p.read_bytes() for p in stick.rglob("*") if p.is_file()}
    result = _classify(stick, edge_bundle, tmp / "out")
    assert {p: p.read_bytes() for p in stick.rglob("*") if p.is_file()} == before  # the input is never written to
    rows = {r["path"]: r for r in json.loads(result.stdout)["results"]}
    return stick, tmp / "out", rows, result


def test_every_dicom_object_passes_dciodvfy_and_dsrdump_reads_every_sr(written):
    stick, out, rows, _ = written
    objects = sorted((out / "sr").glob("*.dcm"))
    assert {p.name for p in objects} == {f"{n}.{kind}.dcm" for n in ("plain.dcm", "ward__jpeg-ls.dcm", "no-study.dcm",
                                                                     "accented.dcm", "long-uid.dcm", "dashed-date.dcm")
                                         for kind in ("sr", "heatmap")}
    for path in objects:
        verdict = subprocess.run([tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=60)
        lines = (verdict.stdout + verdict.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        assert errors == [], f"{path.name}: {errors}"
        iod = "ComprehensiveSR" if path.name.endswith(".sr.dcm") else "SCImage"
        assert iod in lines, f"{path.name}: dciodvfy did not recognise it as {iod}: {lines[:5]}"  # it was read
    for path in (out / "sr").glob("*.sr.dcm"):
        dump = subprocess.run([tool("dsrdump"), str(path)], capture_output=True, text=True, timeout=60)
        assert dump.returncode == 0, dump.stderr
        row = rows[path.name.removesuffix(".sr.dcm").replace("__", "/")]
        assert f'(,,"Finding")=({LABEL_CODES[row["label"]].value},' in dump.stdout
        assert pydicom.dcmread(path).ContentTemplateSequence[0].TemplateIdentifier == "1500"


def test_the_sr_holds_the_result_in_the_source_study_and_refers_to_the_image(written):
    stick, out, rows, _ = written
    for name, row in rows.items():
        if not name.endswith(".dcm"):
            continue
        source = pydicom.dcmread(stick / name)
        sr = pydicom.dcmread(out / "sr" / f"{name.replace('/', '__')}.sr.dcm")
        capture = pydicom.dcmread(out / "sr" / f"{name.replace('/', '__')}.heatmap.dcm")
        for ds in (sr, capture):
            if "StudyInstanceUID" in source:
                assert ds.StudyInstanceUID == source.StudyInstanceUID
            assert ds.PatientName == source.get("PatientName", "")
            assert ds.PatientID == source.get("PatientID", "")
            assert ds.SeriesDescription == "cxr-edge AI pre-diagnosis"
            assert ds.SeriesInstanceUID != source.get("SeriesInstanceUID")
            assert ds.SOPInstanceUID.startswith("2.25.") and len(ds.SOPInstanceUID) <= 64
        assert capture.BurnedInAnnotation == "YES"
        assert capture.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0] \
            .ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        items = _content(sr)
        probabilities = {item.ConceptNameCodeSequence[0].CodeValue: float(item.MeasuredValueSequence[0].NumericValue)
                         for item in items if item.ValueType == "NUM"}
        assert probabilities == {PROBABILITY_CODES[label].value: pytest.approx(row[f"p_{label}"], abs=1e-6)
                                 for label in LABELS}
        texts = [item.TextValue for item in items if item.ValueType == "TEXT"]
        assert any(DISCLAIMER in text for text in texts)
        codes = {item.ConceptNameCodeSequence[0].CodeMeaning: item.ConceptCodeSequence[0].CodeMeaning
                 for item in items if item.ValueType == "CODE"}
        assert codes["Finding"] == LABEL_CODES[row["label"]].meaning
        assert codes["Refer to a clinician"] == ("Yes" if row["refer"] else "No")
    accented = pydicom.dcmread(out / "sr" / "accented.dcm.sr.dcm")
    assert str(accented.PatientName) == "Müller^Zoë" and accented.SpecificCharacterSet == "ISO_IR 192"
    assert pydicom.dcmread(out / "sr" / "long-uid.dcm.sr.dcm").StudyInstanceUID == LONG_UID
    alone = pydicom.dcmread(out / "sr" / "no-study.dcm.sr.dcm")
    assert alone.StudyInstanceUID.startswith("2.25.")


def test_notes_say_what_was_filled_in_and_no_patient_data_reaches_the_output(written):
    _, _, _, result = written
    assert "no-study.dcm: the image has no Study Instance UID" in result.stderr
    assert "dashed-date.dcm: a date or time in the header is malformed" in result.stderr
    for secret in (PATIENT["PatientID"], "Test^Patient", "Müller", "Zoë", "1970-01-01", "19700101"):
        assert secret not in result.stderr


def test_writing_again_gives_the_same_uids_so_nothing_is_stored_twice(written, edge_bundle, tmp_path):
    stick, out, _, _ = written
    _classify(stick, edge_bundle, tmp_path / "again")
    for path in (out / "sr").glob("*.dcm"):
        first, second = pydicom.dcmread(path), pydicom.dcmread(tmp_path / "again" / "sr" / path.name)
        assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (second.SOPInstanceUID, second.SeriesInstanceUID)
    for path in (out / "fhir").glob("*.json"):
        first, second = (json.loads(p.read_text()) for p in (path, tmp_path / "again" / "fhir" / path.name))
        assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in second["entry"]]


def test_every_fhir_bundle_is_valid_r4b_and_says_what_the_report_says(written):
    from fhir.resources.R4B.bundle import Bundle

    _, out, rows, _ = written
    assert {p.name for p in (out / "fhir").glob("*.json")} == {f"{name.replace('/', '__')}.fhir.json" for name in rows}
    for name, row in rows.items():
        raw = json.loads((out / "fhir" / f"{name.replace('/', '__')}.fhir.json").read_text())
        Bundle.model_validate(raw)  # structure, types and cardinalities of R4B (as R4 for these resources)
        assert raw["type"] == "transaction"
        resources = [e["resource"] for e in raw["entry"]]
        urls = {e["fullUrl"] for e in raw["entry"]}
        kinds = [r["resourceType"] for r in resources]
        assert kinds == ["Device", *["Observation"] * 6, "DiagnosticReport"]
        for entry in raw["entry"]:  # conditional creates on the derived identifier: posting twice makes nothing twice
            assert entry["request"]["ifNoneExist"].endswith(entry["fullUrl"])
        report = resources[-1]
        assert report["status"] == "preliminary" and report["code"]["coding"][0]["code"] == "36554-4"
        assert DISCLAIMER in report["conclusion"]
        assert {r["reference"] for r in report["result"]} <= urls
        assert all(o["device"]["reference"] in urls and o["status"] == "preliminary" for o in resources[1:7])
        values = {o["code"]["coding"][0]["code"]: o for o in resources[1:7]}
        for label in LABELS:
            quantity = values[PROBABILITY_CODES[label].value]["valueQuantity"]
            assert quantity["value"] == pytest.approx(row[f"p_{label}"], abs=1e-6) and quantity["code"] == "1"
        assert values["121071"]["valueCodeableConcept"]["coding"][0]["code"] == LABEL_CODES[row["label"]].value
        assert values["referral"]["valueBoolean"] is row["refer"]
        if name == "photo.png":
            assert "subject" not in report and "imagingStudy" not in report
        elif name == "accented.dcm":
            assert "subject" not in report  # no Patient ID in the header
        else:
            assert report["subject"]["identifier"]["value"] == PATIENT["PatientID"]
            if name == "no-study.dcm":
                assert "imagingStudy" not in report  # the image names no study
            else:
                study = pydicom.dcmread(written[0] / name).StudyInstanceUID
                assert report["imagingStudy"][0]["identifier"]["value"] == f"urn:oid:{study}"


def test_its_own_results_on_a_stick_are_skipped_not_classified(written, edge_bundle):
    _, out, _, _ = written
    result = CliRunner().invoke(main, ["classify", str(out / "sr"), "--model", str(edge_bundle), "--format", "json"])
    assert result.exit_code == 3, result.output  # nothing in it is a radiograph
    summary = json.loads(result.stdout)["summary"]
    assert summary["skipped"] == {"cxr-edge result": 12}  # its SRs and heatmaps


def test_sr_and_fhir_folders_inside_the_stick_are_refused(tmp_path, edge_bundle, synth_small):
    stick = _stick(tmp_path, synth_small)
    result = CliRunner().invoke(main, ["classify", str(stick), "--model", str(edge_bundle), "--sr", str(stick / "sr")])
    assert result.exit_code == 2 and "--sr" in result.output and "never written to" in result.output
    assert not (stick / "sr").exists()


def _content(sr) -> list:
    """Every content item of the SR, depth first."""
    items, todo = [], list(sr.ContentSequence)
    while todo:
        item = todo.pop(0)
        items.append(item)
        todo += list(getattr(item, "ContentSequence", []))
    return items

