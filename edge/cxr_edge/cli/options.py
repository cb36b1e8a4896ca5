"""Options and set-up shared by the commands that run a bundle."""

from __future__ import annotations

from pathlib import Path

import click

from cxr_edge.bundle.load import ENV_VAR, BundleError, load_bundle
from cxr_edge.cli.common import errors_as_failures
from cxr_edge.site.site_file import SITE_ENV


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


def _checked_language(ctx: click.Context, param, value: str | None) -> str:
    """The language code, checked only: the command speaks it in its body (cxr_edge.language.speaking), so that a
    usage error found later leaves the process's language as it was."""
    from cxr_edge.language import LanguageError, check

    try:
        return check(value or "en", "--language")
    except LanguageError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[1], ctx=ctx, param=param) from None


def language_option(func):
    """--language (default: $CXR_EDGE_LANGUAGE, else English) as the command's `language` argument: the words of
    the reports, the table and the heatmaps. Codes, column names and JSON keys are the same in every language."""
    from cxr_edge.language import ENVIRONMENT

    return click.option("--language", envvar=ENVIRONMENT, default=None, metavar="CODE", callback=_checked_language,
                        help=f"The language of the report's words, the table and the heatmaps' captions: en, es, "
                             f"fr... [default: ${ENVIRONMENT}, else en]. Codes, column names and JSON keys never "
                             "change.")(func)


def open_bundle(model: Path | None, allow_unverified: bool, allow_unsigned: bool):
    with errors_as_failures(BundleError):
        return load_bundle(model, allow_unverified, allow_unsigned)


def make_classifier(model, threads, allow_unverified, allow_unsigned, min_confidence=None, site_path=None):
    """The bundle's classifier, after its signature check and self-test (which --allow-unverified does not
    skip), with the site file's operating point when one is given."""
    from cxr_edge.bundle.selftest import SelfTestError
    from cxr_edge.models.interpreter import NoInterpreterError
    from cxr_edge.run.classify import Classifier
    from cxr_edge.site.site_file import SiteError, load_site

    bundle = open_bundle(model, allow_unverified, allow_unsigned)
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


def inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def interpreter_version() -> str:
    """The interpreter, and what the int8 probe model shows of it here (XNNPACK on or off, right or wrong)."""
    import platform

    from cxr_edge.models.interpreter import NoInterpreterError, backend
    from cxr_edge.models.probe import probe

    try:
        return f"interpreter: {backend()} on {platform.machine()} ({probe().describe()})"
    except NoInterpreterError as exc:
        return f"interpreter: none ({exc})"
