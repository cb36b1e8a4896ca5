"""Atomic file writes: a reader sees the previous complete file or the new complete one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def umask_mode(mode: int) -> int:
    """`mode` less the process umask: what open() or mkdir() would have given (mkstemp/mkdtemp give 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


@contextlib.contextmanager
def atomic_file(path: os.PathLike | str, mode: int | None = None):
    """A binary file to write that appears at `path` only when the block ends without an error: written beside
    `path`, flushed to disk, then renamed over it. `mode` None: the usual 0666 less the umask; otherwise exactly
    `mode` (a private key's 0600), set before any byte is written."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, umask_mode(0o666) if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: os.PathLike | str, data: str | bytes, mode: int | None = None) -> None:
    """Write `data` to `path` atomically (see atomic_file)."""
    with atomic_file(path, mode) as fh:
        fh.write(data.encode() if isinstance(data, str) else data)


def sync_folder(path: os.PathLike | str) -> None:
    """fsync a folder, so that a rename into it (atomic_file's) survives a power cut too, not only a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
