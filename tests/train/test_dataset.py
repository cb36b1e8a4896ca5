import shutil

import pytest
from PIL import Image

from cxr_train.dataset import DatasetError, make_split, read_split, scan, write_split

import numpy as np


def test_reader_finds_database_layout_and_ignores_masks(synth_small):
    found = scan(synth_small)
    assert found.counts() == {"normal": 6, "lung_opacity": 6, "viral_pneumonia": 6, "covid19": 6}
    assert all("/images/" in r.path and "/masks/" not in r.path for r in found.records)
    assert not found.unreadable


def test_reader_plain_layout(tmp_path):
    for name in ("normal", "lung_opacity", "viral_pneumonia", "covid19"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8), i * 10 + len(name), np.uint8)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "README.txt").write_text("metadata files are ignored")
    found = scan(tmp_path)
    assert found.counts() == {"normal": 3, "lung_opacity": 3, "viral_pneumonia": 3, "covid19": 3}


def test_unreadable_images_are_listed_with_the_reason_not_dropped_silently(synth_small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_small, data)
    good = (data / "COVID" / "images" / "COVID-1.png").read_bytes()
    (data / "COVID" / "images" / "broken.png").write_bytes(good[: len(good) // 2])
    found = scan(data)
    assert len(found.unreadable) == 1
    assert "broken.png" in str(found.unreadable[0]) and "corrupt" in str(found.unreadable[0])
    assert found.counts()["covid19"] == 6


def test_missing_folder_unknown_class_and_empty_class_are_clear_errors(tmp_path, synth_small):
    with pytest.raises(DatasetError, match="does not exist"):
        scan(tmp_path / "missing")
    data = tmp_path / "data"
    shutil.copytree(synth_small, data)
    (data / "Tuberculosis").mkdir()
    with pytest.raises(DatasetError, match="'Tuberculosis'"):
        scan(data)
    shutil.rmtree(data / "Tuberculosis")
    shutil.rmtree(data / "Viral Pneumonia")
    with pytest.raises(DatasetError, match="viral_pneumonia"):
        scan(data)


def test_split_is_deterministic_and_stratified(synth_small):
    records = scan(synth_small).records
    a, b = make_split(records, seed=1), make_split(records, seed=1)
    assert a == b
    assert make_split(records, seed=2) != a
    for label in ("normal", "lung_opacity", "viral_pneumonia", "covid19"):
        per = [sum(r.label == label and r.split == s for r in a) for s in ("train", "val", "test")]
        assert per == [4, 1, 1]


def test_exact_duplicates_stay_in_one_split(synth_small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_small, data)
    src = data / "Normal" / "images" / "Normal-1.png"
    for i in range(5):  # many copies: were they spread out, some would land in val or test
        shutil.copy(src, data / "Normal" / "images" / f"copy-{i}.png")
    records = make_split(scan(data).records, seed=0)
    digest = next(r.sha256 for r in records if r.path.endswith("Normal-1.png"))
    splits = {r.split for r in records if r.sha256 == digest}
    assert len(splits) == 1
    assert sum(r.sha256 == digest for r in records) == 6


def test_too_few_images_is_a_clear_error(tmp_path, synth_small):
    records = [r for r in scan(synth_small).records if not (r.label == "covid19" and not r.path.endswith(("-1.png", "-2.png")))]
    with pytest.raises(DatasetError, match="'covid19' has 2 distinct image"):
        make_split(records)


def test_split_csv_round_trip(synth_small, tmp_path):
    records = make_split(scan(synth_small).records, seed=0)
    path = tmp_path / "split.csv"
    write_split(records, path)
    assert path.read_text().splitlines()[0] == "path,label,split,sha256"
    assert read_split(path) == records


def test_read_split_rejects_wrong_columns(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text("file,label\nx.png,normal\n")
    with pytest.raises(DatasetError, match="expected columns"):
        read_split(path)


def test_atomic_writes_keep_normal_permissions(tmp_path):
    import stat

    from cxr_edge.atomic import umask_mode, write_atomic

    path = tmp_path / "report.csv"
    write_atomic(path, "a,b\n")
    assert path.read_text() == "a,b\n"
    assert stat.S_IMODE(path.stat().st_mode) == umask_mode(0o666)  # not mkstemp's 0600
    write_atomic(path, b"c,d\n")
    assert path.read_bytes() == b"c,d\n" and [p.name for p in tmp_path.iterdir()] == ["report.csv"]
