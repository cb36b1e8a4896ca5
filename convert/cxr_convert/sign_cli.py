"""`cxr-sign`: make a publisher's key pair and sign bundles with it. Thin: validate, call, print."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cxr_edge import DISCLAIMER
from cxr_edge.bundle.files import BundleError
from cxr_edge.bundle.signature import TRUST_ENV, TrustError, fingerprint, read_public_key
from cxr_edge.cli.common import errors_as_failures, version_option

from .signing import PASSPHRASE_ENV, SigningError, is_encrypted, keygen, load_private_key, sign_bundle


def signing_key(path: Path):
    """The private key at `path`, asking for its passphrase ($CXR_SIGN_PASSPHRASE, else a prompt) when it has one."""
    passphrase = None
    with errors_as_failures(OSError):
        encrypted = is_encrypted(path)
    if encrypted:
        passphrase = os.environ.get(PASSPHRASE_ENV) or click.prompt(f"passphrase for {path}", hide_input=True,
                                                                    err=True)
    with errors_as_failures(SigningError):
        return load_private_key(path, passphrase.encode() if passphrase else None)


def key_name(path: Path) -> str:
    return path.name.removesuffix(".key")


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=DISCLAIMER)
@version_option("cxr-sign")
def main() -> None:
    """Sign cxr-edge bundles, so that clinic boxes run only models from a publisher they trust.

    Example: cxr-sign keygen release-2026 && cxr-sign sign bundles/first --key release-2026.key
    """


@main.command("keygen", short_help="Write an Ed25519 key pair: NAME.key and NAME.pub.")
@click.argument("name", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--passphrase", "ask", is_flag=True,
              help=f"Encrypt NAME.key with a passphrase (asked twice, or taken from ${PASSPHRASE_ENV}).")
def keygen_command(name: Path, ask: bool) -> None:
    """Write an Ed25519 key pair: NAME.key (private, mode 0600) and NAME.pub (for the boxes' trust folder).

    Example: cxr-sign keygen keys/release-2026 --passphrase
    """
    passphrase = None
    if ask:
        passphrase = os.environ.get(PASSPHRASE_ENV) or click.prompt("passphrase", hide_input=True,
                                                                    confirmation_prompt=True, err=True)
    with errors_as_failures(SigningError, OSError):
        private, public, fp = keygen(name, passphrase.encode() if passphrase else None)
    click.echo(f"private key: {private} (mode 0600{', passphrase-protected' if passphrase else ''}); keep it off "
               "the boxes and out of version control")
    click.echo(f"public key:  {public} (copy it into each box's trust folder, /etc/cxr-edge/trusted-keys or "
               f"${TRUST_ENV})")
    click.echo(f"fingerprint: {fp}")


@main.command("sign", short_help="Sign a bundle folder or .cxrb file in place.")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The private key, NAME.key.")
def sign_command(bundle: Path, key_path: Path) -> None:
    """Sign a bundle folder or .cxrb file in place: writes manifest.sig, which covers every file's checksum.

    Example: cxr-sign sign bundles/first.cxrb --key keys/release-2026.key
    """
    key = signing_key(key_path)
    with errors_as_failures(SigningError, BundleError, OSError):
        manifest = sign_bundle(bundle, key, key_name(key_path))
    click.echo(f"signed {bundle} with {key_name(key_path)!r} (fingerprint {fingerprint(key.public_key())})")
    if not manifest.get("deployable"):
        click.echo("note: this bundle is marked not deployable (it failed its parity gate); boxes still refuse "
                   "it without --allow-unverified", err=True)


@main.command("fingerprint", short_help="Print a public key's fingerprint, as cxr-edge info shows it.")
@click.argument("public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def fingerprint_command(public_key: Path) -> None:
    """Print a public key's fingerprint: what `cxr-edge info` shows and a trust folder's revoked.txt lists.

    Example: cxr-sign fingerprint keys/release-2026.pub >> /etc/cxr-edge/trusted-keys/revoked.txt
    """
    with errors_as_failures(TrustError):
        click.echo(f"{fingerprint(read_public_key(public_key))}  # {public_key.name}")
