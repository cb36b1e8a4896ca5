"""`cxr-edge info`: a bundle in human form, its checksums, signature, self-test and site file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from cxr_edge import DISCLAIMER
from cxr_edge.bundle.load import ENV_VAR, BundleError
from cxr_edge.cli.common import Failure, errors_as_failures
from cxr_edge.cli.options import interpreter_version, site_option


@click.command("info", short_help="Check a bundle: manifest, checksums, signature, self-test.")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path), required=False)
@site_option
def command(bundle_path: Path | None, site_path: Path | None) -> None:
    """Show a bundle's manifest in human form and verify every checksum.

    Example: cxr-edge info bundle/
    """
    from cxr_edge.bundle.load import Bundle, parse_manifest, read_contents, verify_files

    path = bundle_path or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if path is None:
        raise Failure(f"no bundle given: pass BUNDLE or set {ENV_VAR}")
    with errors_as_failures(BundleError):
        contents = read_contents(path)  # read once: model files can be tens of megabytes
        manifest = parse_manifest(path, contents)
    m = manifest
    click.echo(f"bundle {path} (format version {m['format_version']}, made by cxr-edge {m.get('cxr_edge_version')})")
    click.echo(f"labels: {', '.join(m['labels'])}")
    for name, stage in m.get("stages", {}).items():
        click.echo(f"  {name}: {', '.join(stage['labels'])} ({stage.get('applies_to', '')})")
    inp = m["input"]
    click.echo(f"input: {inp['size']}x{inp['size']}x{inp['channels']} {inp['dtype']}; image contract "
               f"v{m.get('image_contract', {}).get('version')}")
    click.echo(f"quantization: {m['quantization']}; stage 1 threshold {m['stage1_threshold']:.4f} "
               f"(target sensitivity {m.get('target_sensitivity')}); confidence floor {m.get('min_confidence')}")
    data = m.get("training_data", {})
    click.echo(f"trained on: {'SYNTHETIC data' if data.get('synthetic') else data.get('name')}")
    for line in _counts_table(data.get("counts")):
        click.echo(f"  {line}")
    for kind in ("float", "quantized"):
        s = m.get("metrics", {}).get(kind)
        if s:
            f1 = ", ".join(f"{k} {v:.3f}" for k, v in s["f1"].items())
            click.echo(f"{kind:9s} accuracy {s['accuracy']:.4f}, macro-F1 {s['macro_f1']:.4f}, agreement "
                       f"{s['agreement']:.4f}; F1 {f1}")
    ood = m.get("ood")
    if ood:
        f = ood.get("figures", {})
        click.echo(f"out-of-distribution referral: {ood['method']} on {ood['stage']} features, threshold "
                   f"{ood['threshold']:.3f}; test radiographs wrongly referred "
                   f"{f.get('test_radiographs_wrongly_referred', float('nan')):.1%}")
    else:
        click.echo(f"out-of-distribution referral: none (format {m['format_version']} bundle without statistics)")
    gate = m.get("parity_gate", {})
    checked_on = f" (parity gate PASS on {gate['n_images']:,} images)" if "n_images" in gate else ""
    click.echo(f"deployable: yes{checked_on}" if m.get("deployable") else
               f"deployable: NO ({_gate_outcome(m)}; see parity.md): classify, evaluate and calibrate refuse this "
               "bundle unless given --allow-unverified")
    checked = verify_files(path, m, contents)
    failures = 0
    for name, (_, problem) in checked.items():
        click.echo(f"  {name}: {problem if problem != 'ok' else 'checksum ok'}")
        failures += problem != "ok"
    failures += not _show_origin(path, contents)
    if not failures:
        failures += not _show_selftest(Bundle(path, m, {name: data for name, (data, _) in checked.items()}))
    if site_path is not None:
        failures += not _show_site(site_path, contents)
    if data.get("synthetic"):
        click.echo("WARNING: trained on synthetic data: results mean nothing for real patients.")
    click.echo(DISCLAIMER)
    sys.exit(2 if failures else 0)


def _show_site(site_path: Path, contents: dict[str, bytes]) -> bool:
    """Print the site file's operating point and figures; False when it cannot be used with this bundle."""
    from cxr_edge.bundle.files import MANIFEST, sha256_bytes
    from cxr_edge.site.site_file import SiteError, load_site

    try:
        site = load_site(site_path, sha256_bytes(contents[MANIFEST]))
    except SiteError as exc:
        click.echo(f"site file: REFUSED: {exc}")
        return False
    chosen = site.figures.get("chosen", {})
    click.echo(f"site file: {site_path} ({site.name!r}, calibrated {site.created}): threshold {site.threshold:.4f}, "
               f"confidence floor {site.min_confidence:.2f}; on {site.figures.get('used')} labelled images "
               f"sensitivity {chosen.get('sensitivity', float('nan')):.3f}, specificity "
               f"{chosen.get('specificity', float('nan')):.3f}; expects {site.expected.get('flagged_abnormal', 0):.0%} "
               f"flagged abnormal, {site.expected.get('referred_ood', 0):.0%} referred as out-of-distribution")
    return True


def _counts_table(counts) -> list[str]:
    """Training images per split and label, as rows of a small table (older manifests may hold none)."""
    if not isinstance(counts, dict) or not all(isinstance(v, dict) for v in counts.values()):
        return [f"images: {counts if counts is not None else 'not recorded'}"]
    labels = list(dict.fromkeys(label for split in counts.values() for label in split))
    width = max(len(label) for label in labels) if labels else 5
    rows = [f"{'images':{width}s}  " + "  ".join(f"{split:>6s}" for split in counts)]
    rows += [f"{label:{width}s}  " + "  ".join(f"{counts[split].get(label, 0):>6,}" for split in counts)
             for label in labels]
    return rows


def _gate_outcome(manifest: dict) -> str:
    """Why a bundle is not deployable, from its manifest (bundles before the three verdicts say FAIL alone)."""
    gate = manifest.get("parity_gate", {})
    outcome = f"parity gate {gate.get('verdict', 'FAIL')}"
    if not gate.get("float_model", {}).get("learned", True):
        outcome += "; the float model is no better than chance"
    return outcome


def _show_origin(path: Path, contents: dict[str, bytes]) -> bool:
    """Print who signed the bundle, or why its origin is not trusted; False when classify would refuse it."""
    from cxr_edge.bundle.files import MANIFEST, SIGNATURE_FILE
    from cxr_edge.bundle.signature import TrustStore, inspect_origin

    with errors_as_failures(BundleError):
        origin = inspect_origin(contents[MANIFEST], contents.get(SIGNATURE_FILE), TrustStore.load())
    click.echo(f"{origin.summary()} [trust folder {origin.trust_folder}: {origin.trusted_keys} key(s)]")
    if origin.refused:
        click.echo("REFUSED: classify, evaluate and bench will not run this bundle on this box.")
    return not origin.refused


def _show_selftest(bundle) -> bool:
    """Run the bundle's self-test on this box as classify would, print what it found; False when it failed."""
    from cxr_edge.bundle.selftest import SelfTestError, trusted_models
    from cxr_edge.models.interpreter import NoInterpreterError

    made = bundle.manifest.get("selftest", {}).get("reference", {})
    if made:
        click.echo(f"self-test reference: {made.get('interpreter')} on {made.get('machine')} "
                   f"(XNNPACK {'on' if made.get('xnnpack') else 'off'})")
    try:
        with errors_as_failures(NoInterpreterError, BundleError):
            _, selftest = trusted_models(bundle.models, bundle.known_answers(), None, bundle.format_version)
    except SelfTestError as exc:
        selftest = exc.selftest
    click.echo(f"interpreter here: {interpreter_version().removeprefix('interpreter: ')}")
    click.echo(selftest.summary())
    if warning := selftest.warning():
        click.echo(warning)
    if selftest.status == "failed":
        click.echo("FAILED: cxr-edge refuses to classify with this bundle on this interpreter "
                   f"({selftest.as_dict()['interpreter']}); see docs/box.md, \"Verified interpreters\".")
    return selftest.status != "failed"
