"""`cxr-convert --search`: candidates in order of cost, judged on the validation images, the verdict on the test
images; on hand-set models whose verdicts do not depend on a training run (scripts/handmade.py)."""

import hashlib
import json
import re
import shutil

import pytest
from click.testing import CliRunner

from cxr_convert import precision
from cxr_convert.cli import main
from cxr_convert.search import TIME_TIE
from cxr_edge.bundle.load import load_bundle
from cxr_edge.run.classify import Classifier
from scripts.handmade import write_coded_dataset
from scripts.make_outlier_run import make_outlier_run

from tests.conftest import MIXED_BUNDLE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outlier")
    return {"outlier": make_outlier_run(root), "healthy": make_outlier_run(root, healthy=True), "root": root}


def convert(run, out, *args):
    result = CliRunner().invoke(main, [str(run), "--out", str(out), *args])
    parity = json.loads((out / "parity.json").read_text()) if (out / "parity.json").is_file() else None
    return result, parity


@pytest.fixture(scope="module")
def searched(runs):
    return convert(runs["outlier"], runs["root"] / "searched", "--search")


def test_plain_int8_fails_the_outlier_model(runs):
    result, parity = convert(runs["outlier"], runs["root"] / "plain")
    assert result.exit_code == 1, result.output
    assert parity["gate"]["verdict"] == "FAIL" and "search" not in parity
    assert parity["models"]["quantized"]["cascade"]["agreement"] == pytest.approx(0.25)  # all called normal


def test_the_search_passes_it_with_the_outlier_layer_out_of_int8(searched, runs):
    result, parity = searched
    assert result.exit_code == 0, result.output
    search = parity["search"]
    tried = [c for c in search["candidates"] if c["judged"]]
    assert search["found"] and search["candidates_tried"] == len(tried) == 5
    # full int8, more calibration images and the other range algorithms all fail: the outlier is in every image
    assert [c["validation"]["verdict"] for c in tried[:4]] == ["FAIL"] * 4
    assert tried[0]["name"] == "int8" and "calibration images" in tried[1]["name"]
    chosen = tried[-1]
    assert chosen["name"] == search["chosen"] and chosen["validation"]["verdict"] == "PASS"
    # the debugger's worst layer is the head, which reads the outlier layer: both go out of int8, nothing else
    assert chosen["name"].startswith("int8, worst 1 layer")
    keras_layers = sorted(re.sub(r"_\d+$", "", layer["layer"].split("/")[1]) for layer in chosen["layers"])
    assert keras_layers == ["head", "outlier"]
    assert parity["gate"]["verdict"] == "PASS" and parity["quantization"] == chosen["quantization"]

    bundle = runs["root"] / "searched"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["deployable"] and manifest["search"]["layers"] == chosen["layers"]
    types = precision.tensor_types((bundle / "stage1.tflite").read_bytes())
    kept = {layer["layer"] for layer in chosen["layers"]}
    held = {"float16": "float32", "int16": "int16"}[chosen["layers"][0]["precision"]]  # float16 weights, float maths
    assert all(types[name] == held for name in kept)  # what the report names is what the model holds
    assert {"int8"} <= set(types.values())  # and the rest is int8
    assert Classifier(load_bundle(bundle)).selftest.status == "passed"
    # every candidate's cost, and the report says where the verdict came from
    built = [c for c in search["candidates"] if "skipped" not in c]
    assert all(c["cost"]["size_bytes"] > 0 and c["cost"]["ms_per_image"] > 0 and c["cost"]["peak_memory_mb"] > 0
               for c in built)
    # the layers out of int8 came as twins, float16 and int16, the one measured faster judged first
    where = lambda c: [(x["stage"], x["layer"]) for x in c["layers"]]  # noqa: E731
    twins = [c for c in built if where(c) == where(chosen)]
    assert sorted(c["layers"][0]["precision"] for c in twins) == ["float16", "int16"]
    first, second = (c["cost"]["ms_per_image"] for c in twins)
    if twins[0]["layers"][0]["precision"] == "float16":  # float16 first: faster, or a tie
        assert first <= second * (1 + TIME_TIE)
    else:  # int16 first only when faster beyond the tie
        assert first * (1 + TIME_TIE) < second
    assert twins[0] is chosen or not twins[0]["judged"] or twins[0]["validation"]["verdict"] != "PASS"
    text = (bundle / "parity.md").read_text()
    assert f"{len(tried)} candidates judged" in text and "which no choice depended on" in text
    assert "against full int8 and float32" in text


def test_the_committed_mixed_bundle_is_what_the_search_makes(searched):
    _, parity = searched
    committed = json.loads((MIXED_BUNDLE / "manifest.json").read_text())
    chosen = next(c for c in parity["search"]["candidates"] if c["name"] == parity["search"]["chosen"])
    where = lambda layers: [(x["stage"], x["layer"]) for x in layers]  # noqa: E731 (twins tie: float16 or int16)
    assert where(committed["search"]["layers"]) == where(chosen["layers"])


def test_the_verdict_s_images_are_disjoint_from_the_search_s(searched, runs):
    _, parity = searched
    searched_on = set(parity["search"]["images"]["files"])
    judged_on = set(parity["images"]["files"]["test"])
    assert len(searched_on) == parity["search"]["images"]["count"] == 240
    assert len(judged_on) == parity["n_images"] == 240 and not searched_on & judged_on
    data = runs["root"] / "data"  # and by content, not only by name
    digest = lambda path: hashlib.sha256((data / path).read_bytes()).hexdigest()  # noqa: E731
    assert not {digest(p) for p in searched_on} & {digest(p) for p in judged_on}


def test_parity_data_copies_of_validation_images_are_left_out_of_the_verdict(runs, tmp_path):
    from cxr_train.dataset import read_split, select

    run, data = runs["healthy"], runs["root"] / "data"
    extra = write_coded_dataset(tmp_path / "extra", per_class=5, seed=77)
    val = select(read_split(run / "split.csv"), "val")[:6]
    for record in val:
        shutil.copy(data / record.path, extra / record.label / f"copy-{record.path.replace('/', '-')}")
    result, parity = convert(run, tmp_path / "bundle", "--search", "--parity-data", str(extra))
    assert result.exit_code == 0, result.output
    assert "left out 6 exact copies of validation images (the search chose on them)" in result.output
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    searched_on = {digest(data / p) for p in parity["search"]["images"]["files"]}
    judged_on = {digest(extra / p) for p in parity["images"]["files"]["parity_data"]}
    assert len(judged_on) == 20 and not searched_on & judged_on


def test_a_model_int8_keeps_passes_at_the_first_candidate_without_ranking_layers(runs):
    result, parity = convert(runs["healthy"], runs["root"] / "healthy", "--search")
    assert result.exit_code == 0, result.output
    assert parity["search"]["candidates_tried"] == 1 and parity["search"]["chosen"] == "int8"
    assert "ranking the layers" not in result.output  # the debugger never ran
    manifest = json.loads((runs["root"] / "healthy" / "manifest.json").read_text())
    assert manifest["quantization"] == "int8" and manifest["input"]["dtype"] == "uint8" and manifest["deployable"]


def test_a_search_where_nothing_passes_writes_no_deployable_bundle_and_exits_non_zero(runs, tmp_path):
    """240 images cannot show agreement >= 0.999 with their whole interval: every candidate is inconclusive."""
    out = tmp_path / "nothing"
    result, parity = convert(runs["healthy"], out, "--search", "--min-agreement", "0.999")
    assert result.exit_code == 1, result.output
    search = parity["search"]
    judged = [c for c in search["candidates"] if c["judged"]]
    assert not search["found"] and {"float16", "float32"} <= {c["name"] for c in judged}
    assert {c["validation"]["verdict"] for c in judged} == {"INCONCLUSIVE"}
    assert "NOT DEPLOYABLE: no quantization the search tried passed on the validation images" in result.output
    assert "**None passed**" in (out / "parity.md").read_text()
    assert not json.loads((out / "manifest.json").read_text())["deployable"]
    assert not load_bundle(out, allow_unverified=True).deployable


def test_nothing_passing_on_validation_is_not_deployable_even_when_the_test_images_pass(runs, tmp_path, monkeypatch):
    """Deploying what passed only on the test images would make them the search's judge: not deployable."""
    from cxr_convert import search

    real = search.run

    def none_found(*args, **kwargs):
        result = real(*args, **kwargs)
        return search.SearchResult(result.models, result.quantization, {**result.report, "found": False})

    monkeypatch.setattr(search, "run", none_found)
    out = tmp_path / "bundle"
    result, parity = convert(runs["healthy"], out, "--search")
    assert parity["gate"]["verdict"] == "PASS"  # on the test images the candidate passes...
    assert result.exit_code == 1 and "PASS: deployable" not in result.output  # ...but nothing chose it
    assert not parity["gate"]["passed"] and not json.loads((out / "manifest.json").read_text())["deployable"]
    assert "no candidate of the 1 the search judged passed on the validation images" in result.output


def test_a_run_without_validation_images_cannot_be_searched(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["healthy"], run)
    split = run / "split.csv"
    split.write_text(split.read_text().replace(",val,", ",train,"))
    result = CliRunner().invoke(main, [str(run), "--out", str(tmp_path / "b"), "--search"])
    assert result.exit_code != 0 and "its split has none" in result.output and not (tmp_path / "b").exists()


@pytest.mark.parametrize("args, message", [
    (["--parity-split", "val"], "its verdict needs the test split"),
    (["--quantization", "float16"], "--search chooses the quantization itself"),
])
def test_search_refuses_what_would_make_its_verdict_meaningless(runs, tmp_path, args, message):
    result = CliRunner().invoke(main, [str(runs["healthy"]), "--out", str(tmp_path / "b"), "--search", *args])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "b").exists()


def test_a_layer_the_quantizer_cannot_keep_is_an_error_not_a_silent_int8():
    """ai-edge-quantizer drops a rule it cannot apply without a word (here: float16 for the int32 shape arithmetic
    of stage 2's flatten); precision.quantize reads the types back and says so."""
    import numpy as np

    from cxr_convert.tflite import convert as to_tflite
    from scripts.handmade import coded_models

    float32 = to_tflite(coded_models()[1], "float32")
    calibration = np.full((4, 64, 64, 1), 128, np.uint8)
    shape = next(op.name for op in precision.graph(float32) if op.kind == "SHAPE")
    with pytest.raises(ValueError, match="cannot keep .*Shape in float16"):
        precision.quantize(float32, calibration, precision.Recipe(layers={shape: "float16"}))


@pytest.mark.parametrize("times, chosen", [
    ({"int16": 0.01, "float16": 1.0, "float": 0.5}, "int16"),  # int16 faster than its twin beyond the tie: first
    ({"int16": 0.7, "float16": 1.0, "float": 0.5}, "float16"),  # faster than its twin, slower than float: not judged
])
def test_twins_are_judged_by_time_and_a_slow_int16_one_not_at_all(runs, tmp_path, monkeypatch, times, chosen):
    """Costs set by what each model holds (int16 tensors, float16 weights, no int8 at all), so that the order
    depends on the rules alone, not on this machine's timing noise."""
    from cxr_convert import search

    def kind(models):
        types = set(precision.tensor_types(models["stage1"]).values())
        return ("int16" if "int16" in types else "float16" if "int8" in types and "float16" in types
                else "int8" if "int8" in types else "float")

    monkeypatch.setattr(search, "cost", lambda models, pixels: {
        "size_bytes": 1, "ms_per_image": times.get(kind(models), 0.1), "peak_memory_mb": 1.0})
    result, parity = convert(runs["outlier"], tmp_path / "b", "--search")
    assert result.exit_code == 0, result.output
    twins = [c for c in parity["search"]["candidates"] if c["quantization"].startswith("int8+")]
    assert parity["search"]["chosen"] == f"int8, worst 1 layer {chosen}"
    if chosen == "float16":
        assert twins[0]["layers"][0]["precision"] == "int16"
        assert twins[0]["not_judged"] == "slower than whole-model float"
