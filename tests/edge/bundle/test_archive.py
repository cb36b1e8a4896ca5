"""The single-file bundle (.cxrb): written by cxr-convert --archive, read by every cxr-edge command, and
refused, before anything is read, when it holds anything a bundle should not."""

import io
import json
import stat
import zipfile

import pytest
from click.testing import CliRunner

from cxr_edge.bundle.archive import read_archive, write_archive
from cxr_edge.bundle.load import BundleError, load_bundle
from cxr_edge.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(edge_bundle, tmp_path_factory):
    return write_archive(edge_bundle, tmp_path_factory.mktemp("cxrb") / "bundle.cxrb")


def test_archive_loads_like_the_folder(archive, edge_bundle, usb_stick):
    a, f = load_bundle(archive), load_bundle(edge_bundle)
    assert a.models == f.models and a.manifest == f.manifest
    runner = CliRunner()
    for args in (["info", str(archive)], ["classify", str(usb_stick / "ward-2"), "--model", str(archive)],
                 ["bench", "--model", str(archive), "-n", "2"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)


def test_same_bundle_same_archive_bytes(edge_bundle, tmp_path):
    assert write_archive(edge_bundle, tmp_path / "a.cxrb").read_bytes() == \
        write_archive(edge_bundle, tmp_path / "b.cxrb").read_bytes()


def _zip(tmp_path, members, name="evil.cxrb"):
    """members: (ZipInfo or name, bytes)."""
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def _link(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("member, message", [
    ("/etc/manifest.json", "absolute name"),
    ("../manifest.json", "contains '..'"),
    ("models/../../x", "contains '..'"),
    (_link("stage1.tflite"), "symbolic link"),
    ("payload.sh", "not a bundle file"),
])
def test_unsafe_members_are_refused_before_anything_is_read(tmp_path, archive, member, message):
    good = read_archive(archive)
    path = _zip(tmp_path, [*good.items(), (member, b"x")])
    with pytest.raises(BundleError, match=message):
        load_bundle(path)


def test_oversized_member_is_refused(tmp_path, archive, monkeypatch):
    import cxr_edge.bundle.archive as archive_module

    monkeypatch.setattr(archive_module, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(BundleError, match="over the 1000-byte limit"):
        load_bundle(archive)


def test_tampered_archives_are_refused_naming_the_member(tmp_path, archive):
    good = read_archive(archive)
    flipped = bytearray(good["stage1.tflite"])
    flipped[1000] ^= 0x01
    path = _zip(tmp_path, [(k, bytes(flipped) if k == "stage1.tflite" else v) for k, v in good.items()], "flip.cxrb")
    with pytest.raises(BundleError, match=r"flip.cxrb:stage1.tflite: sha256 [0-9a-f]{64} does not match"):
        load_bundle(path)
    path = _zip(tmp_path, [(k, v[:-100] if k == "stage2.tflite" else v) for k, v in good.items()], "cut.cxrb")
    with pytest.raises(BundleError, match=r"stage2.tflite: size \d+ bytes, the manifest says \d+ \(truncated or replaced\)"):
        load_bundle(path)
    path = _zip(tmp_path, [(k, v) for k, v in good.items() if k != "stage1.tflite"], "missing.cxrb")
    with pytest.raises(BundleError, match="stage1.tflite: missing"):
        load_bundle(path)
    manifest = json.loads(good["manifest.json"])
    manifest["format_version"] = 7
    path = _zip(tmp_path, [(k, json.dumps(manifest) if k == "manifest.json" else v) for k, v in good.items()], "new.cxrb")
    with pytest.raises(BundleError, match="format version 7"):
        load_bundle(path)
    (tmp_path / "junk.cxrb").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BundleError, match="not a .cxrb bundle archive"):
        load_bundle(tmp_path / "junk.cxrb")


def test_convert_archive_flag(handmade_run, tmp_path):
    from cxr_convert.cli import main as convert_main

    out = tmp_path / "bundle"
    result = CliRunner().invoke(convert_main, [str(handmade_run), "--out", str(out), "--archive",
                                               "--calibration-samples", "64"])
    assert result.exit_code == 0, result.output
    packed = tmp_path / "bundle.cxrb"
    assert load_bundle(packed).models == load_bundle(out).models
