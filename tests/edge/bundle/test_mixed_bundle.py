"""A bundle with layers kept out of int8 (what `cxr-convert --search` may choose: float arithmetic with float16
weights) on the box: loaded, checked by its self-test and classifying with the box's own interpreter and packages.
The bundle is committed (tests/edge/mixed-bundle, remade by scripts/make_outlier_run.py --test-bundle)."""

import json
from pathlib import Path

import numpy as np
import pytest

from cxr_edge.bundle.load import load_bundle
from cxr_edge.bundle.selftest import SelfTestError
from cxr_edge.models.interpreter import backend
from cxr_edge.run.classify import Classifier, run_folder
from scripts.handmade import OUTLIER_SCALE, write_coded_dataset

from tests.bundle_edits import edited_copy
from tests.conftest import MIXED_BUNDLE


def _tensor_types(model: bytes) -> dict[str, str]:
    interpreter = backend().interpreter_class(model_content=model)
    return {t["name"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}


def test_the_committed_bundle_keeps_the_layers_it_names_out_of_int8():
    manifest = json.loads((MIXED_BUNDLE / "manifest.json").read_text())
    assert manifest["quantization"] == "int8+float16" and manifest["deployable"]
    types = _tensor_types((MIXED_BUNDLE / "stage1.tflite").read_bytes())
    kept = [layer["layer"] for layer in manifest["search"]["layers"]]
    assert kept and all(types[name] == "float32" for name in kept)
    assert "int8" in set(types.values()) and "float16" in set(types.values())  # int8 elsewhere; float16 weights


def test_the_box_classifies_with_a_mixed_precision_bundle_through_its_self_test(tmp_path):
    classifier = Classifier(load_bundle(MIXED_BUNDLE))
    assert classifier.selftest.status == "passed"
    data = write_coded_dataset(tmp_path / "coded", per_class=5, seed=11)
    results, summary = run_folder(classifier, data)
    assert summary.images == 20 and not summary.errors
    assert all(r.label == Path(r.path).parent.name for r in results)  # the coded images' labels, every one


def test_the_self_test_catches_a_wrong_float16_layer(tmp_path):
    """The kept layer's float16 weights, the brightness's halved: the known answers no longer come out."""
    model = (MIXED_BUNDLE / "stage1.tflite").read_bytes()
    weights = np.array([1.0] * 7 + [OUTLIER_SCALE], np.float16).tobytes()
    assert model.count(weights) == 1
    wrong = model.replace(weights, np.array([0.5] + [1.0] * 6 + [OUTLIER_SCALE], np.float16).tobytes())
    bundle = edited_copy(MIXED_BUNDLE, tmp_path / "wrong", files={"stage1.tflite": wrong})
    with pytest.raises(SelfTestError):
        Classifier(load_bundle(bundle, allow_unverified=True))
