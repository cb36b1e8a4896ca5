"""The Debian tools the tests use as real peers and judges (.ci/run installs their packages when absent)."""

import os
import shutil

import pytest

PACKAGES = {"storescu": "dcmtk", "echoscu": "dcmtk", "dsrdump": "dcmtk", "dciodvfy": "dicom3tools",
            "Orthanc": "orthanc", "chromedriver": "chromium-driver"}


def tool(name: str) -> str:
    """The tool's path: fails under CI when it is missing, skips elsewhere."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
    if path is None:
        package = PACKAGES.get(name, name)
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run installs Debian's {package} package")
        pytest.skip(f"{name} is not installed (`apt-get install {package}`; .ci/run installs it)")
    return path
