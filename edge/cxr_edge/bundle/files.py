"""What a bundle holds: its file names, format version, checksums and error type.

A leaf module: bundle.py (reading a bundle), archive.py (the .cxrb form) and selftest.py (its known answers)
all import it, and it imports nothing of the package, so none of them import each other in a circle.
"""

from __future__ import annotations

import hashlib

# 3: a known-answer self-test (selftest.npz); 2: out-of-distribution statistics (ood.npz). 1 and 2 are still read.
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
MODEL_FILES = ("stage1.tflite", "stage2.tflite")
OOD_FILE = "ood.npz"
SELFTEST_FILE = "selftest.npz"
DATA_FILES = (OOD_FILE, SELFTEST_FILE)  # checked like the models whenever the manifest lists them
SIGNATURE_FILE = "manifest.sig"  # the publisher's signature over manifest.json's bytes (optional)
BUNDLE_FILES = (MANIFEST, SIGNATURE_FILE, *MODEL_FILES, *DATA_FILES, "parity.json", "parity.md", "reliability.png")
ARCHIVE_SUFFIX = ".cxrb"
ENV_VAR = "CXR_EDGE_MODEL"


class BundleError(ValueError):
    """A bundle that must not be used; the message names the file and the problem."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
