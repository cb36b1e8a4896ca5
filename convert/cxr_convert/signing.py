"""The publisher's side of signed bundles: Ed25519 key pairs, and signing a bundle folder or .cxrb archive.

The box's side (reading trusted keys, checking a signature) is cxr_edge.bundle.signature; this module adds only what a
release machine needs, and imports no TensorFlow, so `cxr-sign` runs where the bundle is released.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cxr_edge.atomic import write_atomic
from cxr_edge.bundle.archive import pack
from cxr_edge.bundle.files import MANIFEST, SIGNATURE_FILE
from cxr_edge.bundle.load import parse_manifest, read_contents, verify_files
from cxr_edge.bundle.signature import fingerprint, sign_manifest

PASSPHRASE_ENV = "CXR_SIGN_PASSPHRASE"


class SigningError(ValueError):
    """A key or bundle that cannot be signed with; the message says what to do."""


def key_paths(name: os.PathLike | str) -> tuple[Path, Path]:
    """NAME.key and NAME.pub for a key NAME (a path without suffix)."""
    name = Path(name)
    return name.with_name(name.name + ".key"), name.with_name(name.name + ".pub")


def keygen(name: os.PathLike | str, passphrase: bytes | None = None) -> tuple[Path, Path, str]:
    """Write NAME.key (PKCS#8 PEM, mode 0600, encrypted when a passphrase is given) and NAME.pub; refuses to
    overwrite either. Returns both paths and the key's fingerprint."""
    private_path, public_path = key_paths(name)
    for path in (private_path, public_path):
        if path.exists():
            raise SigningError(f"{path} exists; a key is never overwritten (choose another name, or move it away)")
    key = Ed25519PrivateKey.generate()
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    write_atomic(private_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 encryption), mode=0o600)
    public = key.public_key()
    write_atomic(public_path, public.public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path, fingerprint(public)


def is_encrypted(path: os.PathLike | str) -> bool:
    return b"ENCRYPTED" in Path(path).read_bytes()[:64]


def load_private_key(path: os.PathLike | str, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """The signing key; refuses one that others can read, as ssh does."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the key ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningError(f"{path}: the private key is readable by others (mode {stat.S_IMODE(mode):04o}); "
                           f"run `chmod 600 {path}`, and consider the key exposed if others could log in")
    try:
        key = serialization.load_pem_private_key(data, passphrase or None)
    except TypeError:
        raise SigningError(f"{path} is passphrase-protected: give the passphrase (prompt, or ${PASSPHRASE_ENV})") from None
    except ValueError as exc:
        raise SigningError(f"{path}: not a usable private key, or a wrong passphrase ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: a {type(key).__name__}; sign with an Ed25519 key from `cxr-sign keygen`")
    return key


def _checked_contents(path: Path) -> dict[str, bytes]:
    """The bundle's files, after checking that every file matches its manifest: a damaged bundle is never signed."""
    contents = read_contents(path)
    manifest = parse_manifest(path, contents)
    problems = [problem for _, problem in verify_files(path, manifest, contents).values() if problem != "ok"]
    if problems:
        raise SigningError("refusing to sign a damaged bundle: " + "; ".join(problems))
    return contents


def sign_bundle(bundle: os.PathLike | str, key: Ed25519PrivateKey, key_name: str) -> dict:
    """Sign a bundle folder or .cxrb archive in place (manifest.sig beside manifest.json, written atomically).
    Returns the manifest, so the caller can say what it signed."""
    path = Path(bundle)
    contents = _checked_contents(path)
    signature = sign_manifest(contents[MANIFEST], key, key_name)
    if path.is_file():
        write_atomic(path, pack({**contents, SIGNATURE_FILE: signature}))
    else:
        write_atomic(path / SIGNATURE_FILE, signature)
    return parse_manifest(path, contents)
