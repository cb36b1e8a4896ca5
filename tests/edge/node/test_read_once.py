"""How often a received image is parsed and decoded on its way through the node, counted: the receiver's C-STORE
handler (its header), the classifying thread (the whole file: the model input, the display image, the header the SR
is made from), the outbox (SR and heatmap capture), the screen's thumbnail and its heatmap."""

from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from pydicom import uid as uids

from cxr_edge.bundle.load import load_bundle
from cxr_edge.inputs import images as images_module
from cxr_edge.node.config import DicomConfig, Peer, SendConfig
from cxr_edge.node.outbox import Publisher
from cxr_edge.node.receiver import Receiver
from cxr_edge.node.state import State
from cxr_edge.node.worker import Worker
from cxr_edge.pictures import heatmap as heatmap_module
from cxr_edge.run.classify import Classifier
from cxr_edge.web import pictures
from cxr_edge.web.app import Context
from cxr_train.synth_dicom import write_dicom


@pytest.fixture()
def counted(monkeypatch):
    counts = {"parsed": 0, "decoded": 0, "heatmaps": 0}

    def counting(module, name, key):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            counts[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(pydicom, "dcmread", "parsed")
    counting(images_module, "read_dicom", "decoded")
    counting(heatmap_module, "label_heat", "heatmaps")
    return counts


def _store_event(path):
    ds = pydicom.dcmread(path)
    return SimpleNamespace(assoc=SimpleNamespace(requestor=SimpleNamespace(ae_title="UNIT", address="127.0.0.1")),
                           request=SimpleNamespace(AffectedSOPClassUID=ds.SOPClassUID,
                                                   AffectedSOPInstanceUID=ds.SOPInstanceUID),
                           encoded_dataset=lambda: path.read_bytes())


def test_a_received_image_is_parsed_twice_and_decoded_once(tmp_path, edge_bundle, counted):
    source = write_dicom(tmp_path / "unit.dcm", (np.indices((512, 512)).sum(axis=0) % 4096).astype(np.uint16),
                         bits=12, syntax=uids.ExplicitVRLittleEndian, ViewPosition="PA", BodyPartExamined="CHEST",
                         StudyInstanceUID=uids.generate_uid(), SeriesInstanceUID=uids.generate_uid())
    event = _store_event(source)
    counted.update(parsed=0)
    state = State(tmp_path / "data")
    classifier = Classifier(load_bundle(edge_bundle))
    log = []
    receiver = Receiver(DicomConfig(allowed_callers=("UNIT",), min_free_mb=1), state, log.append)
    assert receiver.handle_store(event) == 0, log
    send = SendConfig(dicom=(Peer("PACS", "127.0.0.1", 4242),), heatmap_capture=True)
    worker = Worker(classifier, state, 0, log.append, Publisher(send, classifier, state, log.append))
    worker._pass()
    assert [item["kind"] for item in state.outbox_items()] == ["sr", "capture"]
    image = state.image(1)
    context = Context(None, state, log.append, dict, lambda: classifier)
    thumbnail = pictures.thumbnail(state, image, None)
    assert pictures.make_heatmap(context, image) and pictures.heatmap_path(state.data, 1).stat().st_size > 0
    state.close()
    print(f"parsed {counted['parsed']}, decoded {counted['decoded']}, heatmaps {counted['heatmaps']}")
    # the header on receipt, the whole file once when classified; its pixels decoded and its heatmap computed once
    assert counted == {"parsed": 2, "decoded": 1, "heatmaps": 1}
    assert thumbnail[:2] == b"\xff\xd8"


def _received(tmp_path, edge_bundle):
    """A frontal DX radiograph as the node's C-STORE handler stores it: (the state, a classifier, the log)."""
    source = write_dicom(tmp_path / "unit.dcm", (np.indices((256, 256)).sum(axis=0) % 4096).astype(np.uint16),
                         bits=12, syntax=uids.ExplicitVRLittleEndian, ViewPosition="PA", BodyPartExamined="CHEST",
                         StudyInstanceUID=uids.generate_uid(), SeriesInstanceUID=uids.generate_uid())
    state = State(tmp_path / "data")
    log = []
    assert Receiver(DicomConfig(allowed_callers=("UNIT",), min_free_mb=1), state, log.append).handle_store(
        _store_event(source)) == 0, log
    return state, Classifier(load_bundle(edge_bundle)), log


def test_records_that_a_full_disk_kept_from_being_made_are_owed_then_made(tmp_path, edge_bundle, monkeypatch):
    """The outbox's disk full as an image is classified and its study becomes final: the result and the study are
    recorded all the same, owing their SR, heatmap capture and FHIR Bundle (nothing queued, said in the log); once
    the disk has room, the worker's sweep makes and queues every one, once."""
    import errno

    from cxr_edge.node import outbox

    state, classifier, log = _received(tmp_path, edge_bundle)
    send = SendConfig(dicom=(Peer("PACS", "127.0.0.1", 4242),), heatmap_capture=True, fhir_url="http://127.0.0.1:9/")
    worker = Worker(classifier, state, 0, log.append, Publisher(send, classifier, state, log.append))

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outbox, "write_durably", full)
    worker._pass()
    assert state.outbox_items() == [] and state.instance_results()[0]["label"]  # classified, nothing queued
    assert len(state.owed_results()) == 1 and len(state.owed_studies()) == 1
    assert any("owed, made again later" in line for line in log)
    assert worker.make_owed() == 0  # still full: still owed
    monkeypatch.undo()
    assert worker.make_owed() == 2
    assert sorted(item["kind"] for item in state.outbox_items()) == ["capture", "fhir", "sr"]
    assert state.owed_results() == [] and state.owed_studies() == [] and worker.make_owed() == 0
    state.close()


def test_records_owed_by_another_bundle_s_result_are_not_made_by_this_one(tmp_path, edge_bundle):
    """A result owing its SR when a promotion made another bundle active: the new bundle would name itself in
    objects about a result it did not make, so they wait (for a rollback) rather than be made wrong."""
    from cxr_edge.run.result import Result

    state, classifier, log = _received(tmp_path, edge_bundle)
    send = SendConfig(dicom=(Peer("PACS", "127.0.0.1", 4242),), heatmap_capture=True)
    worker = Worker(classifier, state, 0, log.append, Publisher(send, classifier, state, log.append))
    instance = state.pending()[0]
    result = Result(instance.path, "normal", (0.9, 0.05, 0.03, 0.02))
    state.record_result(instance.sop_instance_uid, result, owed=True, bundle="another-bundle")
    assert worker.make_owed() == 0 and state.outbox_items() == []
    assert len(state.owed_results()) == 1  # still owed, for a rollback
    state.record_result(instance.sop_instance_uid, result, owed=True, bundle=classifier.bundle.manifest_sha256)
    assert worker.make_owed() == 1 and sorted(i["kind"] for i in state.outbox_items()) == ["capture", "sr"]
    state.close()


def test_below_the_watermark_no_outbox_file_is_written_and_the_records_wait(tmp_path, edge_bundle, monkeypatch):
    """Free space below min_free_mb keeps the node from writing outbox files (the space left is the database's):
    the result owes its SR and capture; once space returns, the sweep makes them."""
    from collections import namedtuple

    from cxr_edge.node import outbox

    state, classifier, log = _received(tmp_path, edge_bundle)
    send = SendConfig(dicom=(Peer("PACS", "127.0.0.1", 4242),), heatmap_capture=True)
    worker = Worker(classifier, state, 0, log.append, Publisher(send, classifier, state, log.append, min_free_mb=2048))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(outbox.shutil, "disk_usage", lambda path: usage(10 * 2**30, 0, 1000 * 2**20))  # 1000 MB
    worker._pass()
    assert state.outbox_items() == [] and len(state.owed_results()) == 1
    assert not (state.data / "outbox").exists() or not any((state.data / "outbox").iterdir())
    monkeypatch.setattr(outbox.shutil, "disk_usage", lambda path: usage(10 * 2**30, 0, 5000 * 2**20))
    assert worker.make_owed() == 1 and sorted(i["kind"] for i in state.outbox_items()) == ["capture", "sr"]
    state.close()
