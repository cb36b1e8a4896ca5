"""Read-only files and folders for the tests that need them. As root (as CI runs), chmod cannot keep a process from
writing, so a read-only bind mount stands in for a read-only disk; where mounting is not allowed the test skips."""

import contextlib
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only(path: Path):
    """`path` (a file or a folder) read-only for everyone, root included, for the `with` block."""
    bound = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True)
        yield path
    finally:
        for _ in range(50):  # a process the test started may still hold it for a moment
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            import time
            time.sleep(0.1)
