"""A site's operating point and what a run is checked against.

A site file (SITE.json, written by `cxr-edge calibrate`) holds the threshold and confidence floor chosen on the
clinic's own labelled images, for one bundle (its manifest's sha256), and the shares of images that the site
expects flagged abnormal and referred as out-of-distribution. `classify --site` (or $CXR_EDGE_SITE) applies
it; every run is then compared with what it expects, or, without one, with the bundle's own test-split figures.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cxr_edge.reasons import THRESHOLD_FREE
from cxr_edge.site.stats import binomial_p_value

SITE_ENV = "CXR_EDGE_SITE"
SITE_FORMAT = 1
MONITOR_MIN_IMAGES = 30  # fewer images than this say nothing about a shift
MONITOR_P_VALUE = 0.001  # a run this unlikely under the expected share is "far outside"


class SiteError(ValueError):
    """A site file that cannot be used with this bundle; the message says why and what to do."""


@dataclass(frozen=True)
class Site:
    path: Path
    name: str
    created: str
    threshold: float
    min_confidence: float
    expected: dict
    figures: dict


def load_site(path: os.PathLike | str, manifest_sha256: str) -> Site:
    """Read a site file and check that it was made for the bundle whose manifest has this sha256."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != SITE_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this cxr-edge reads format {SITE_FORMAT}")
        site = Site(path, str(data["site"]), str(data["created"]), float(data["threshold"]),
                    float(data["min_confidence"]), dict(data.get("expected", {})), dict(data.get("figures", {})))
        made_for = data["bundle"]["manifest_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SiteError(f"site file {path}: unreadable ({type(exc).__name__}: {exc}); make it again with "
                        "`cxr-edge calibrate`") from None
    if made_for != manifest_sha256:
        raise SiteError(f"site file {path} was made for another bundle (manifest sha256 {made_for[:16]}..., this "
                        f"bundle's is {manifest_sha256[:16]}...): calibrate again with this bundle "
                        "(`cxr-edge calibrate`), or use the bundle it was made for")
    return site


def operating_point(classifier) -> dict:
    """What every report states: the threshold and floor in use, and where they come from."""
    site = classifier.site
    source = (f"site file {site.path.name} ({site.name!r}, calibrated {site.created})" if site
              else "the bundle (not calibrated for this site)")
    return {"threshold": classifier.threshold, "min_confidence": classifier.min_confidence, "source": source,
            "site": site.name if site else None, "site_created": site.created if site else None}


def operating_point_line(classifier) -> str:
    point = operating_point(classifier)
    return (f"operating point: stage 1 threshold {point['threshold']:.4f}, confidence floor "
            f"{point['min_confidence']:.2f}, from {point['source']}")


def uncalibrated_warning(classifier) -> str | None:
    if classifier.site:
        return None
    return ("WARNING: not calibrated for this site: the threshold is the bundle's, chosen on its training data's "
            "validation split; run `cxr-edge calibrate` on this clinic's own labelled images (docs/box.md, \"Site "
            "calibration\").")


def expected_shares(classifier) -> tuple[dict, str]:
    """The shares a run is compared with: the site file's, else the bundle's test-split figures (which reflect
    the training data's class balance, not this clinic's)."""
    return expected_for(classifier.bundle, classifier.site)


def expected_for(bundle, site) -> tuple[dict, str]:
    """expected_shares of a bundle and site file (None) without their Classifier."""
    if site:
        return site.expected, f"this site's calibration ({site.created})"
    manifest = bundle.manifest
    expected = {}
    if "flagged_abnormal" in manifest.get("expected", {}):
        expected["flagged_abnormal"] = manifest["expected"]["flagged_abnormal"]
    figures = manifest.get("ood", {}).get("figures", {})
    if "test_radiographs_wrongly_referred" in figures:
        expected["referred_ood"] = figures["test_radiographs_wrongly_referred"]
    return expected, "the bundle's test split (its training data's class balance)"


def _far_from_expected(results, classifier) -> list[tuple[str, int, int, float]]:
    """(share's key, count, images, expected share) for each share of this run far from what is expected (exact
    binomial test, p < 0.001, at least 30 images)."""
    expected, _source = expected_shares(classifier)
    classified = [r for r in results if r.label and not r.error]
    answered = [r for r in classified if not set(r.reason_codes) & THRESHOLD_FREE]
    checks = (("flagged_abnormal", sum(r.label != "normal" for r in answered), len(answered)),
              ("referred_ood", sum("ood" in r.reason_codes for r in classified), len(classified)))
    far = []
    for key, k, n in checks:
        p = expected.get(key)
        if p is not None and n >= MONITOR_MIN_IMAGES and binomial_p_value(k, n, float(p)) < MONITOR_P_VALUE:
            far.append((key, k, n, float(p)))
    return far


def monitor(results, classifier) -> list[str]:
    """Warnings, in words (English, for the record and the technician), when this run's share flagged abnormal or
    referred as out-of-distribution is far from what is expected (exact binomial test, p < 0.001, at least 30
    images)."""
    source = expected_shares(classifier)[1]
    words = {"flagged_abnormal": "flagged abnormal", "referred_ood": "referred as out-of-distribution"}
    return [f"WARNING: this run {words[key]} {k} of {n} images ({k / n:.0%}); {source} expects {p:.0%}. That is far "
            f"outside (binomial test, p < {MONITOR_P_VALUE}): check the X-ray unit and its export settings, the "
            "patients sent, or calibrate again." for key, k, n, p in _far_from_expected(results, classifier)]


def monitor_plain(results, classifier) -> list[str]:
    """The same warnings for the clinician, in the current language."""
    from cxr_edge.language import _, percent

    found = []
    for key, k, n, p in _far_from_expected(results, classifier):
        shares = {"k": k, "n": n, "share": percent(k / n), "expected": percent(p)}
        if key == "flagged_abnormal":
            found.append(_("This run flagged %(k)s of %(n)s images abnormal (%(share)s), far from the %(expected)s "
                           "expected: check the X-ray unit and its export settings and the patients sent, or "
                           "calibrate again.") % shares)
        else:
            found.append(_("This run found %(k)s of %(n)s images unlike the chest films the AI learned from "
                           "(%(share)s), far from the %(expected)s expected: check the X-ray unit and its export "
                           "settings and the patients sent, or calibrate again.") % shares)
    return found
