"""Read-only files and folders, and small disks, for the tests that need them. As root (as CI runs), chmod cannot
keep a process from writing, so a read-only bind mount stands in for a read-only disk, and tmpfs for a small one;
where mounting is not allowed the test skips."""

import contextlib
import subprocess
import time
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
            time.sleep(0.1)


@contextlib.contextmanager
def small_disk(path: Path, megabytes: int):
    """A file system of `megabytes` (tmpfs) at `path` for the `with` block: a disk the test can fill."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=700", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], capture_output=True)


def fill(folder: Path, leave_kb: int) -> Path:
    """A file in `folder` that leaves `leave_kb` free on its file system; remove it to free the space."""
    import shutil

    filler = folder / "filler"
    size = max(0, shutil.disk_usage(folder).free - leave_kb * 1024)
    with open(filler, "ab") as fh:
        fh.write(b"\0" * size)
    return filler
