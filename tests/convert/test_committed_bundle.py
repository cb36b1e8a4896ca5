"""The box's tests run on a committed bundle (tests/edge/tiny-bundle) instead of a training run: it must still be
what scripts/make_test_bundle.py makes, so that regenerating it changes nothing those tests rely on."""

import json

import numpy as np
import pytest

from cxr_edge.bundle.load import load_bundle
from cxr_edge.run.classify import Classifier, run_folder
from scripts.make_test_bundle import make_bundle

from tests.conftest import TINY_BUNDLE

# Regenerated on this machine twice, both .tflite files were equal to the committed ones byte for byte; the share
# leaves room for another TensorFlow's float order moving a few images across a boundary of a barely trained model.
MIN_SAME_LABEL = 0.9


def _keys(value, prefix=""):
    """Every key path of a JSON document: the manifest's shape, whatever its figures."""
    if isinstance(value, dict):
        return {k for key, item in value.items() for k in {f"{prefix}{key}", *_keys(item, f"{prefix}{key}.")}}
    return set()


@pytest.mark.slow
def test_the_regenerated_bundle_behaves_as_the_committed_one(tmp_path, synth_small):
    pytest.importorskip("tensorflow", reason="trains a model: TensorFlow is not installed here")
    fresh = tmp_path / "bundle"
    make_bundle(fresh, tmp_path / "work")
    old, new = (json.loads((folder / "manifest.json").read_text()) for folder in (TINY_BUNDLE, fresh))
    assert _keys(new) == _keys(old) and new["deployable"] and old["deployable"]
    for key in ("format_version", "labels", "input", "quantization", "image_contract"):
        assert new[key] == old[key], key
    assert sorted(new["files"]) == sorted(old["files"])
    results = {}
    for name, folder in (("committed", TINY_BUNDLE), ("regenerated", fresh)):
        classifier = Classifier(load_bundle(folder))  # the box's self-test passes on each
        assert classifier.selftest.status == "passed", name
        results[name], _ = run_folder(classifier, synth_small)
    same = np.mean([a.label == b.label for a, b in zip(results["committed"], results["regenerated"])])
    print(f"same label on {same:.0%} of {len(results['committed'])} images")
    assert same >= MIN_SAME_LABEL
