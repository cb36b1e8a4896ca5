"""Who published a bundle: an Ed25519 signature over manifest.json, checked against the box's trusted keys.

The manifest pins every model and data file by size and sha256, so one signature over its exact bytes covers
the whole bundle, `deployable` and the self-test included. The trust folder (default /etc/cxr-edge/trusted-keys,
or $CXR_EDGE_TRUSTED_KEYS) holds one PEM public key per publisher, NAME.pub, and optionally revoked.txt, one
key fingerprint per line. When it holds any key, a bundle must be signed by one of them; when it holds none,
bundles run and every output says their origin is unverified. The cryptography is the `cryptography` package's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cxr_edge.bundle.files import MANIFEST, SIGNATURE_FILE, BundleError

TRUST_ENV = "CXR_EDGE_TRUSTED_KEYS"
DEFAULT_TRUST_DIR = Path("/etc/cxr-edge/trusted-keys")
REVOKED_FILE = "revoked.txt"
# Signed together with the manifest, so a signature made for anything else never passes for a bundle's.
DOMAIN = b"cxr-edge bundle manifest v1\n"
SIGNATURE_FORMAT = 1


class TrustError(BundleError):
    """A trust folder the box cannot use (an unreadable key, a bad revocation line)."""


def fingerprint(key: Ed25519PublicKey) -> str:
    """The sha256 of the raw 32-byte public key, in hex: what revoked.txt lists and `info` shows."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def read_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, OSError) as exc:
        raise TrustError(f"{path}: not a PEM public key ({exc}); remove it or replace it with the publisher's "
                         ".pub file") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TrustError(f"{path}: a {type(key).__name__}, not an Ed25519 key; cxr-edge accepts only keys made "
                         "by `cxr-sign keygen`")
    return key


def sign_manifest(manifest: bytes, private_key: Ed25519PrivateKey, key_name: str) -> bytes:
    """The signature file's bytes for these exact manifest bytes."""
    public = private_key.public_key()
    record = {"format": SIGNATURE_FORMAT, "algorithm": "ed25519", "signed": MANIFEST, "key_name": key_name,
              "fingerprint": fingerprint(public),
              "signature": base64.b64encode(private_key.sign(DOMAIN + manifest)).decode("ascii")}
    return (json.dumps(record, indent=2) + "\n").encode()


@dataclass(frozen=True)
class TrustStore:
    """The publishers' keys a box trusts, by fingerprint, and the fingerprints it has revoked."""

    folder: Path
    keys: dict[str, tuple[str, Ed25519PublicKey]] = field(default_factory=dict)  # fingerprint -> (name, key)
    revoked: frozenset[str] = frozenset()

    @classmethod
    def load(cls, folder: os.PathLike | str | None = None) -> TrustStore:
        """Read the trust folder ($CXR_EDGE_TRUSTED_KEYS, else /etc/cxr-edge/trusted-keys); absent means empty."""
        folder = Path(folder or os.environ.get(TRUST_ENV) or DEFAULT_TRUST_DIR)
        if not folder.is_dir():
            return cls(folder)
        keys = {}
        for path in sorted(folder.glob("*.pub")):
            key = read_public_key(path)
            keys[fingerprint(key)] = (path.stem, key)
        return cls(folder, keys, _read_revoked(folder / REVOKED_FILE))


def others_can_write(path: Path) -> bool:
    """Whether users other than the owner can change `path` (group or world write): for the trust folder, whoever
    can add a key there decides what the box runs."""
    try:
        return bool(path.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH))
    except OSError:
        return False


def trust_folder_warning(folder: Path | None = None) -> str | None:
    folder = Path(folder or os.environ.get(TRUST_ENV) or DEFAULT_TRUST_DIR)
    if not others_can_write(folder):
        return None
    return (f"WARNING: the trust folder {folder} can be written by other users: whoever can add a key there decides "
            f"what this box runs; fix it with `chmod go-w {folder}`.")


def _read_revoked(path: Path) -> frozenset[str]:
    """revoked.txt: one hex fingerprint per line (what `cxr-sign fingerprint` prints); '#' starts a comment."""
    if not path.is_file():
        return frozenset()
    revoked = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        entry = line.split("#", 1)[0].strip().lower()
        if not entry:
            continue
        token = entry.split()[0]
        if len(token) != 64 or any(c not in "0123456789abcdef" for c in token):
            raise TrustError(f"{path}, line {number}: {token!r} is not a key fingerprint (64 hex digits, as "
                             "`cxr-sign fingerprint KEY.pub` prints); fix the line")
        revoked.add(token)
    return frozenset(revoked)


@dataclass(frozen=True)
class Origin:
    """What the box could establish about who made a bundle."""

    trust_folder: str
    trusted_keys: int
    signer: str | None = None  # the trusted key's name (its .pub file's), when the signature verified
    fingerprint: str | None = None
    problem: str | None = None  # why the origin is not verified; None when it is
    refused: bool = False  # the problem is one the box refuses to run with (see check_origin)
    allow_unsigned: bool = False

    @property
    def verified(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.verified:
            return f"origin: signed by {self.signer!r}, a trusted key (fingerprint {self.fingerprint})"
        return f"origin: NOT VERIFIED: {self.problem}"

    def warning(self) -> str | None:
        if self.verified:
            return None
        used = "; used with --allow-unsigned" if self.allow_unsigned else ""
        return f"WARNING: the bundle's origin is not verified ({self.problem}){used}."

    def as_dict(self) -> dict:
        return {"verified": self.verified, "signer": self.signer, "fingerprint": self.fingerprint,
                "problem": self.problem, "trust_folder": self.trust_folder, "trusted_keys": self.trusted_keys,
                "allow_unsigned": self.allow_unsigned}


def inspect_origin(manifest: bytes, signature: bytes | None, store: TrustStore) -> Origin:
    """The bundle's origin against `store`, without refusing anything (for `info`)."""
    base = {"trust_folder": str(store.folder), "trusted_keys": len(store.keys)}
    none_trusted = f"; no trusted keys in {store.folder}" if not store.keys else ""
    if signature is None:
        return Origin(**base, problem=f"the bundle is unsigned{none_trusted}", refused=bool(store.keys))
    try:
        record = json.loads(signature.decode("utf-8"))
        claimed, raw = str(record["fingerprint"]).lower(), base64.b64decode(record["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        return Origin(**base, problem=f"{SIGNATURE_FILE} is unreadable ({type(exc).__name__}: {exc}){none_trusted}",
                      refused=bool(store.keys))
    name = str(record.get("key_name", "?"))
    if claimed in store.revoked:
        return Origin(**base, fingerprint=claimed, refused=True,
                      problem=f"signed by key {name!r} ({claimed}), which {store.folder / REVOKED_FILE} revokes")
    if claimed not in store.keys:
        return Origin(**base, fingerprint=claimed, refused=bool(store.keys),
                      problem=f"signed by key {name!r} ({claimed}), which is not among the trusted keys{none_trusted}")
    trusted_name, key = store.keys[claimed]
    try:
        key.verify(raw, DOMAIN + manifest)
    except InvalidSignature:
        return Origin(**base, fingerprint=claimed, refused=True,
                      problem=f"the signature by {trusted_name!r} does not match {MANIFEST} (it was changed after "
                              "signing, or the signature belongs to another bundle)")
    return Origin(**base, signer=trusted_name, fingerprint=claimed)


def check_origin(manifest: bytes, signature: bytes | None, store: TrustStore, allow_unsigned: bool = False) -> Origin:
    """The origin, or BundleError when the box must refuse the bundle: with trusted keys installed, one that is
    unsigned, signed by an unknown key, or whose signature is damaged or does not verify; always, one signed by a
    revoked key. --allow-unsigned lets all but the revoked through (for development); every output says so."""
    origin = inspect_origin(manifest, signature, store)
    revoked = origin.fingerprint in store.revoked
    if origin.refused and (revoked or not allow_unsigned):
        hint = "" if revoked else "; --allow-unsigned runs it anyway, for development only"
        raise BundleError(f"refusing the bundle: {origin.problem}. Use a bundle signed by a key in {store.folder} "
                          f"(${TRUST_ENV}); see docs/security.md, \"Signed bundles\"{hint}")
    return replace(origin, allow_unsigned=allow_unsigned)
