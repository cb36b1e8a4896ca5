"""Debian's Chromium for the tests that render the worklist (.ci/run installs it)."""

import os
import shutil

import pytest


def chromium(profile) -> list[str]:
    """The headless Chromium command line with a fresh profile in `profile`, as the probe runs it; fails under CI
    when Chromium is missing, skips elsewhere."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (`apt-get install chromium`; .ci/run installs it)")
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
            "--disable-background-networking", f"--user-data-dir={profile}"]
