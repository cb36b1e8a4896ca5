"""Signed bundles: the box runs only bundles signed by a key in its trust folder (when it has one), refuses
changed, re-signed, unknown-key and revoked-key bundles, and says in every output when the origin is unverified."""

import json
import shutil
import stat

import pytest
from click.testing import CliRunner

from cxr_convert.sign_cli import main as sign_main
from cxr_convert.signing import SigningError, keygen, load_private_key, sign_bundle
from cxr_edge.bundle.archive import write_archive
from cxr_edge.bundle.files import MANIFEST, SIGNATURE_FILE, BundleError
from cxr_edge.bundle.load import load_bundle
from cxr_edge.bundle.signature import TrustStore
from cxr_edge.cli import main as edge_main


@pytest.fixture()
def keys(tmp_path):
    """Two publishers' key pairs: 'release' (trusted on the box) and 'stranger' (not)."""
    folder = tmp_path / "keys"
    folder.mkdir()
    return {name: keygen(folder / name) for name in ("release", "stranger")}


@pytest.fixture()
def trust(tmp_path, keys, monkeypatch):
    """The box's trust folder holding the 'release' public key."""
    folder = tmp_path / "trusted-keys"
    folder.mkdir()
    shutil.copy(keys["release"][1], folder / "release.pub")
    monkeypatch.setenv("CXR_EDGE_TRUSTED_KEYS", str(folder))
    return folder


def _signed(edge_bundle, tmp_path, keys, signer="release", name="bundle"):
    copy = shutil.copytree(edge_bundle, tmp_path / name)
    sign_bundle(copy, load_private_key(keys[signer][0]), signer)
    return copy


def _classify(bundle, stick, *extra):
    return CliRunner().invoke(edge_main, ["classify", str(stick / "ward-2"), "--model", str(bundle), "--format", "json",
                                          *extra])


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path, monkeypatch):
    monkeypatch.setattr("os.umask", lambda mask=0: 0)  # even a careless umask cannot widen it
    private, public, fp = keygen(tmp_path / "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----") and len(fp) == 64
    assert "PRIVATE" not in public.read_text()
    with pytest.raises(SigningError, match="never overwritten"):
        keygen(tmp_path / "k")


def test_a_private_key_readable_by_others_is_refused(keys):
    keys["release"][0].chmod(0o644)
    with pytest.raises(SigningError, match="readable by others"):
        load_private_key(keys["release"][0])


def test_passphrase_protected_key(tmp_path, monkeypatch):
    private, _, _ = keygen(tmp_path / "locked", passphrase=b"correct horse")
    assert b"ENCRYPTED" in private.read_bytes()
    with pytest.raises(SigningError, match="passphrase-protected"):
        load_private_key(private)
    with pytest.raises(SigningError, match="wrong passphrase"):
        load_private_key(private, b"wrong")
    assert load_private_key(private, b"correct horse")
    monkeypatch.setenv("CXR_SIGN_PASSPHRASE", "wrong")  # the key is opened before the bundle is looked at
    result = CliRunner().invoke(sign_main, ["sign", str(tmp_path), "--key", str(private)])
    assert result.exit_code == 2 and "wrong passphrase" in result.output


def test_signed_bundle_runs_and_every_form_names_its_signer(edge_bundle, tmp_path, keys, trust, usb_stick):
    bundle = _signed(edge_bundle, tmp_path, keys)
    origin = load_bundle(bundle).origin
    assert origin.verified and origin.signer == "release" and origin.fingerprint == keys["release"][2]
    result = _classify(bundle, usb_stick)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bundle"]["origin"]["signer"] == "release"
    assert not any("origin" in w for w in report["warnings"])
    info = CliRunner().invoke(edge_main, ["info", str(bundle)])
    assert info.exit_code == 0 and f"signed by 'release', a trusted key (fingerprint {keys['release'][2]})" in info.output


@pytest.mark.parametrize("case, message", [
    ("changed manifest byte", "does not match manifest.json"),
    ("signature of another bundle", "does not match manifest.json"),
    ("untrusted key", "not among the trusted keys"),
    ("unsigned", "the bundle is unsigned"),
    ("damaged signature file", "manifest.sig is unreadable"),
])
def test_the_box_refuses_what_its_trusted_keys_did_not_sign(edge_bundle, tmp_path, keys, trust, usb_stick, case,
                                                           message):
    bundle = _signed(edge_bundle, tmp_path, keys, "stranger" if case == "untrusted key" else "release")
    if case == "changed manifest byte":
        manifest = (bundle / MANIFEST).read_bytes()
        (bundle / MANIFEST).write_bytes(manifest.replace(b'"min_confidence": 0.6', b'"min_confidence": 0.1'))
        assert (bundle / MANIFEST).read_bytes() != manifest
    elif case == "signature of another bundle":
        other = _signed(edge_bundle, tmp_path, keys, name="other")
        (other / MANIFEST).write_text((other / MANIFEST).read_text() + " ")
        sign_bundle(other, load_private_key(keys["release"][0]), "release")
        shutil.copy(other / SIGNATURE_FILE, bundle / SIGNATURE_FILE)
    elif case == "unsigned":
        (bundle / SIGNATURE_FILE).unlink()
    elif case == "damaged signature file":
        (bundle / SIGNATURE_FILE).write_text("{not json")
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle)
    for command in (["classify", str(usb_stick)], ["evaluate", str(usb_stick)], ["bench", "-n", "2"]):
        result = CliRunner().invoke(edge_main, [*command, "--model", str(bundle)])
        assert result.exit_code == 2 and "refusing the bundle" in result.output and message in result.output
    info = CliRunner().invoke(edge_main, ["info", str(bundle)])
    assert info.exit_code == 2 and "NOT VERIFIED" in info.output and "REFUSED" in info.output
    # for development: runs, and every output form says so
    result = _classify(bundle, usb_stick, "--allow-unsigned")
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert any(message in w and "--allow-unsigned" in w for w in warnings), warnings


def test_a_revoked_key_is_refused_even_with_allow_unsigned(edge_bundle, tmp_path, keys, trust, usb_stick):
    bundle = _signed(edge_bundle, tmp_path, keys)
    printed = CliRunner().invoke(sign_main, ["fingerprint", str(keys["release"][1])])
    (trust / "revoked.txt").write_text("# leaked 2026-11-28\n" + printed.output)
    with pytest.raises(BundleError, match="revokes"):
        load_bundle(bundle)
    result = _classify(bundle, usb_stick, "--allow-unsigned")
    assert result.exit_code == 2 and "revokes" in result.output and "--allow-unsigned runs it" not in result.output
    (trust / "revoked.txt").write_text("not-a-fingerprint\n")
    with pytest.raises(BundleError, match="revoked.txt, line 1"):
        load_bundle(bundle)


def test_without_trusted_keys_bundles_run_and_say_their_origin_is_unverified(edge_bundle, tmp_path, keys,
                                                                              usb_stick):
    for bundle in (edge_bundle, _signed(edge_bundle, tmp_path, keys)):
        for fmt, read in (("json", lambda out: "\n".join(json.loads(out)["warnings"])),
                          ("csv", lambda out: out), ("table", lambda out: out)):
            result = CliRunner().invoke(edge_main, ["classify", str(usb_stick / "ward-2"), "--model", str(bundle),
                                                    "--format", fmt])
            assert result.exit_code == 0, result.output
            assert "origin is not verified" in read(result.stdout) and "no trusted keys in" in read(result.stdout)
    info = CliRunner().invoke(edge_main, ["info", str(edge_bundle)])
    assert info.exit_code == 0 and "NOT VERIFIED: the bundle is unsigned; no trusted keys" in info.output


def test_cxrb_archive_signed_and_checked(edge_bundle, tmp_path, keys, trust, usb_stick):
    archive = write_archive(edge_bundle, tmp_path / "edge.cxrb")
    with pytest.raises(BundleError, match="unsigned"):
        load_bundle(archive)
    result = CliRunner().invoke(sign_main, ["sign", str(archive), "--key", str(keys["release"][0])])
    assert result.exit_code == 0, result.output
    assert load_bundle(archive).origin.signer == "release"
    assert _classify(archive, usb_stick).exit_code == 0
    # a folder unpacked from it, then edited, no longer verifies
    import zipfile

    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(archive).extractall(unpacked)
    assert load_bundle(unpacked).origin.verified
    (unpacked / MANIFEST).write_text((unpacked / MANIFEST).read_text().replace('"deployable": true',
                                                                                 '"deployable": true '))
    with pytest.raises(BundleError, match="does not match"):
        load_bundle(unpacked)


def test_a_damaged_bundle_is_never_signed(edge_bundle, tmp_path, keys):
    copy = shutil.copytree(edge_bundle, tmp_path / "damaged")
    (copy / "stage1.tflite").write_bytes((copy / "stage1.tflite").read_bytes()[:-1])
    result = CliRunner().invoke(sign_main, ["sign", str(copy), "--key", str(keys["release"][0])])
    assert result.exit_code == 2 and "refusing to sign a damaged bundle" in result.output
    assert not (copy / SIGNATURE_FILE).exists()


def test_an_unusable_trust_folder_is_an_error_not_an_open_door(edge_bundle, trust):
    (trust / "broken.pub").write_text("-----BEGIN PUBLIC KEY-----\nnonsense\n")
    with pytest.raises(BundleError, match="broken.pub: not a PEM public key"):
        TrustStore.load()
    with pytest.raises(BundleError, match="broken.pub"):
        load_bundle(edge_bundle)


@pytest.mark.slow
def test_convert_signs_with_sign_flag(handmade_run, tmp_path, keys, trust):
    from cxr_convert.cli import main as convert_main

    out = tmp_path / "bundle"
    result = CliRunner().invoke(convert_main, [str(handmade_run), "--out", str(out), "--archive",
                                               "--calibration-samples", "64", "--sign", str(keys["release"][0])])
    assert result.exit_code == 0, result.output
    assert load_bundle(out).origin.signer == "release"
    assert load_bundle(tmp_path / "bundle.cxrb").origin.signer == "release"
