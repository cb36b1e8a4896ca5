"""`cxr-edge`: the clinic box's command line. Thin: each command validates, calls the library, prints."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from . import DISCLAIMER
from .bundle import ENV_VAR, BundleError, load_bundle
from .clitools import Failure, errors_as_failures, version_option
from .site import SITE_ENV


def _interpreter_version() -> str:
    """The interpreter, and what the int8 probe model shows of it here (XNNPACK on or off, right or wrong)."""
    import platform

    from .interpreter import NoInterpreterError, backend
    from .probe import probe

    try:
        return f"interpreter: {backend()} on {platform.machine()} ({probe().describe()})"
    except NoInterpreterError as exc:
        return f"interpreter: none ({exc})"


def model_options(func):
    """--model (default: $CXR_EDGE_MODEL), --threads, --allow-unverified and --allow-unsigned, shared by every
    command that runs a bundle."""
    func = click.option("--allow-unsigned", is_flag=True,
                        help="Run a bundle not signed by a trusted key (development only); every output says so. "
                             "A revoked key is refused all the same.")(func)
    func = click.option("--allow-unverified", is_flag=True,
                        help="Use a bundle that did not pass its parity gate; every result is marked unverified.")(func)
    func = click.option("--threads", type=click.IntRange(min=1), default=None,
                        help="Interpreter threads [default: all cores].")(func)
    return click.option("--model", "model", type=click.Path(path_type=Path), envvar=ENV_VAR, default=None,
                        help=f"The model bundle folder [default: ${ENV_VAR}].")(func)


def _load(model: Path | None, allow_unverified: bool, allow_unsigned: bool):
    with errors_as_failures(BundleError):
        return load_bundle(model, allow_unverified, allow_unsigned)


def _classifier(model, threads, allow_unverified, allow_unsigned, min_confidence=None, site_path=None):
    """The bundle's classifier, after its signature check and self-test (which --allow-unverified does not
    skip), with the site file's operating point when one is given."""
    from .classify import Classifier
    from .interpreter import NoInterpreterError
    from .selftest import SelfTestError
    from .site import SiteError, load_site

    bundle = _load(model, allow_unverified, allow_unsigned)
    site = None
    if site_path is not None:
        with errors_as_failures(SiteError):
            site = load_site(site_path, bundle.manifest_sha256)
    with errors_as_failures(NoInterpreterError, SelfTestError, ValueError):
        return Classifier(bundle, threads, min_confidence, site)


def site_option(func):
    return click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path), envvar=SITE_ENV,
                        default=None, help=f"This clinic's site file from `cxr-edge calibrate`: its threshold and "
                                           f"confidence floor [default: ${SITE_ENV}].")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=DISCLAIMER)
@version_option("cxr-edge", _interpreter_version)
def main() -> None:
    """Chest X-ray pre-diagnosis on a clinic box.

    Example: cxr-edge classify /media/usb --model bundle/
    """
    # pydicom logs a traceback for each file it cannot decode; the report's error column already says why.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_options
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default=None,
              help="Output on stdout [default: table on a terminal, csv otherwise].")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report to this file, atomically: .csv, .json, .jsonl, or .html (a worklist "
                   "with every image, most urgent first, that opens offline in any browser).")
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Look in sub-folders.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
              help="Refer images whose label's probability is below this [default: the bundle's, 0.6].")
@click.option("--restart", is_flag=True, help="Discard the journal of an interrupted run instead of resuming it.")
@click.option("--heatmaps", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write an occlusion heatmap PNG per image into this folder (slower; off by default); an "
                   ".html report shows them too.")
@click.option("--html-heatmaps", is_flag=True, help="Compute heatmaps for the .html report only (slower).")
@site_option
def classify(folder: Path, model, threads, allow_unverified, allow_unsigned, fmt, output, recursive, min_confidence,
             restart, heatmaps, html_heatmaps, site_path) -> None:
    """Classify every image in FOLDER (a USB stick); never writes to FOLDER.

    Exit status 0: every image classified; 1: some files could not be read (they have error rows);
    2: usage or bundle errors.

    Example: cxr-edge classify /media/usb --model bundle/ --output ~/reports/today.csv
    """
    from .classify import run_folder
    from .report import render, report_format, summary_text, write_report

    if output is not None:
        if _inside(output, folder):
            raise Failure(f"--output {output} is inside the input folder {folder}, which is never written to; "
                          "write the report elsewhere")
        with errors_as_failures(ValueError):
            html = report_format(output) == "html"
    if html_heatmaps and (output is None or not html):
        raise Failure("--html-heatmaps needs an HTML report: add --output REPORT.html")
    if heatmaps is not None:
        if _inside(heatmaps, folder):
            raise Failure(f"--heatmaps {heatmaps} is inside the input folder {folder}, which is never written to; "
                          "choose a folder elsewhere")
        with errors_as_failures(OSError):
            heatmaps.mkdir(parents=True, exist_ok=True)
    classifier = _classifier(model, threads, allow_unverified, allow_unsigned, min_confidence, site_path)
    fmt = fmt or ("table" if sys.stdout.isatty() else "csv")
    progress = _Progress() if sys.stderr.isatty() else None
    update = progress.update if progress else None
    journal = visuals = None
    if output is None:
        results, summary = run_folder(classifier, folder, recursive, update, heatmaps)
    else:
        from .journal import run_with_journal
        from .visuals import Visuals, visuals_dir

        with errors_as_failures(OSError):
            if html:
                visuals = Visuals(visuals_dir(output), heatmaps=html_heatmaps or heatmaps is not None)
            results, summary, journal = run_with_journal(classifier, folder, output, recursive, restart, update,
                                                         heatmaps, visuals)
    if progress:
        progress.close()
    if journal is not None and journal.set_aside:
        click.echo(f"a journal from another run (other bundle, folder or floor) was set aside as "
                   f"{journal.path.name}.old", err=True)
    if summary.resumed:
        click.echo(f"resumed an interrupted run: {summary.resumed} image(s) taken from {journal.path.name}", err=True)
    click.echo(render(fmt, results, summary, classifier), nl=False)
    if fmt != "table":
        click.echo(summary_text(summary), err=True)
        from .site import monitor

        for warning in monitor(results, classifier):
            click.echo(warning, err=True)
    if output is not None:
        with errors_as_failures(OSError):
            write_report(output, results, summary, classifier, folder, visuals, journal.started)
            journal.remove()
            if visuals is not None:
                visuals.remove()
        click.echo(f"report written to {output}", err=True)
    sys.exit(1 if summary.errors else 0)


class _Progress:
    """A progress bar on stderr, for terminals only (reports on stdout stay clean)."""

    WIDTH = 30

    def __init__(self):
        self.shown = False

    def update(self, done: int, total: int) -> None:
        filled = self.WIDTH * done // max(total, 1)
        click.echo(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} images", err=True, nl=False)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo("", err=True)


@main.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path), required=False)
@site_option
def info(bundle_path: Path | None, site_path: Path | None) -> None:
    """Show a bundle's manifest in human form and verify every checksum.

    Example: cxr-edge info bundle/
    """
    from .bundle import Bundle, parse_manifest, read_contents, verify_files

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
    click.echo(f"trained on: {'SYNTHETIC data' if data.get('synthetic') else data.get('name')}; counts {data.get('counts')}")
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
    click.echo(f"deployable: {'yes' if m.get('deployable') else f'NO ({_gate_outcome(m)}; see parity.md)'}")
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
    from .bundle_files import MANIFEST, sha256_bytes
    from .site import SiteError, load_site

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


def _gate_outcome(manifest: dict) -> str:
    """Why a bundle is not deployable, from its manifest (bundles before the three verdicts say FAIL alone)."""
    gate = manifest.get("parity_gate", {})
    outcome = f"parity gate {gate.get('verdict', 'FAIL')}"
    if not gate.get("float_model", {}).get("learned", True):
        outcome += "; the float model is no better than chance"
    return outcome


def _show_origin(path: Path, contents: dict[str, bytes]) -> bool:
    """Print who signed the bundle, or why its origin is not trusted; False when classify would refuse it."""
    from .bundle_files import MANIFEST, SIGNATURE_FILE
    from .signature import TrustStore, inspect_origin

    with errors_as_failures(BundleError):
        origin = inspect_origin(contents[MANIFEST], contents.get(SIGNATURE_FILE), TrustStore.load())
    click.echo(f"{origin.summary()} [trust folder {origin.trust_folder}: {origin.trusted_keys} key(s)]")
    if origin.refused:
        click.echo("REFUSED: classify, evaluate and bench will not run this bundle on this box.")
    return not origin.refused


def _show_selftest(bundle) -> bool:
    """Run the bundle's self-test on this box as classify would, print what it found; False when it failed."""
    from .interpreter import NoInterpreterError
    from .selftest import SelfTestError, trusted_models

    made = bundle.manifest.get("selftest", {}).get("reference", {})
    if made:
        click.echo(f"self-test reference: {made.get('interpreter')} on {made.get('machine')} "
                   f"(XNNPACK {'on' if made.get('xnnpack') else 'off'})")
    try:
        with errors_as_failures(NoInterpreterError, BundleError):
            _, selftest = trusted_models(bundle.models, bundle.known_answers(), None, bundle.format_version)
    except SelfTestError as exc:
        selftest = exc.selftest
    click.echo(f"interpreter here: {_interpreter_version().removeprefix('interpreter: ')}")
    click.echo(selftest.summary())
    if warning := selftest.warning():
        click.echo(warning)
    if selftest.status == "failed":
        click.echo("FAILED: cxr-edge refuses to classify with this bundle on this interpreter "
                   f"({selftest.as_dict()['interpreter']}); see the README, \"Verified interpreters\".")
    return selftest.status != "failed"


@main.command()
@click.argument("labelled", type=click.Path(exists=True, path_type=Path))
@model_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The site file to write (JSON), atomically; the bundle is never changed.")
@click.option("--site", "site_name", default="this site", show_default=True, help="The clinic's name, for reports.")
@click.option("--target-sensitivity", type=click.FloatRange(0.5, 1.0), default=None,
              help="The sensitivity for abnormal the threshold must reach [default: the bundle's, 0.95].")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
              help="The confidence floor to write [default: the bundle's].")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def calibrate(labelled: Path, model, threads, allow_unverified, allow_unsigned, out, site_name, target_sensitivity,
              min_confidence, fmt) -> None:
    """Choose this clinic's threshold on its own labelled images and write a site file for `classify --site`.

    LABELLED is a folder of class sub-folders (normal/ and abnormal/, or the four labels) or a CSV of path,label.
    Exit status 0: site file written; 2: too few images (nothing written), or usage and bundle errors.

    Example: cxr-edge calibrate /media/usb/labelled --model bundle/ --site "Clinic 4" --out /etc/cxr-edge/site.json
    """
    import json

    from .atomic import write_atomic
    from .calibrate import CalibrationError, calibrate as run_calibration, format_calibration, site_record

    if _inside(out, labelled if labelled.is_dir() else labelled.parent):
        raise Failure(f"--out {out} is inside the labelled folder, which is never written to; write it elsewhere")
    classifier = _classifier(model, threads, allow_unverified, allow_unsigned, min_confidence)
    target = target_sensitivity or float(classifier.bundle.manifest.get("target_sensitivity") or 0.95)
    with errors_as_failures(CalibrationError, OSError):
        figures = run_calibration(classifier, labelled, target)
    record = site_record(classifier, figures, site_name)
    click.echo(json.dumps(record, indent=2) if fmt == "json" else format_calibration(record))
    if not figures["ready"]:
        raise Failure(f"too few labelled images to set a threshold: {figures['abnormal']} abnormal and "
                      f"{figures['normal']} normal could be used, the floor is {figures['floors']['abnormal']} and "
                      f"{figures['floors']['normal']} (each rate known to within ±10 points); {out} not written")
    with errors_as_failures(OSError):
        write_atomic(out, json.dumps(record, indent=2) + "\n")
    click.echo(f"site file written to {out}: use it with `cxr-edge classify --site {out}` (or ${SITE_ENV})", err=True)


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def evaluate(folder: Path, model, threads, allow_unverified, allow_unsigned, fmt) -> None:
    """Confusion matrix (Table 2) and per-class precision/recall/F1 (Table 3) on a labeled folder.

    FOLDER holds one sub-folder per class (Normal/, COVID/, ... or the label names), images directly
    inside or in images/.

    Example: cxr-edge evaluate test-images/ --model bundle/
    """
    from .evaluate import evaluate_folder, format_table, LabeledFolderError

    classifier = _classifier(model, threads, allow_unverified, allow_unsigned)
    with errors_as_failures(LabeledFolderError):
        result = evaluate_folder(classifier, folder)
    origin = classifier.bundle.origin
    warnings = [w for w in [classifier.selftest.warning(), origin.warning()] if w]
    if fmt == "json":
        import json

        click.echo(json.dumps({**result, "notice": DISCLAIMER, "warnings": warnings,
                               "selftest": classifier.selftest.as_dict(), "origin": origin.as_dict()}, indent=2))
    else:
        click.echo(format_table(result))
        click.echo("\n".join([classifier.selftest.summary(), origin.summary(), *warnings, DISCLAIMER]))


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@model_options
@click.option("-n", "count", type=click.IntRange(min=1), default=200, show_default=True, help="Images to time.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def bench(folder, model, threads, allow_unverified, allow_unsigned, count, fmt) -> None:
    """Time each stage and the whole pipeline: latency p50/p95, images/s, decode vs inference, peak memory.

    Without FOLDER it times generated images.

    Example: cxr-edge bench --model bundle/ -n 200
    """
    from .bench import format_bench, run_bench

    classifier = _classifier(model, threads, allow_unverified, allow_unsigned)
    result = run_bench(classifier, folder, count)
    if fmt == "json":
        import json

        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(format_bench(result))
