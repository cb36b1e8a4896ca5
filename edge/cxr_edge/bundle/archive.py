"""The single-file bundle (.cxrb): a zip archive of the bundle folder, easy to carry on a USB stick.

Opening one is safe by construction: every member is checked (its name is one of the bundle's file names,
so never absolute and never with '..'; not a link or a folder; within the size limit; not duplicated)
before any member is read, and members are read into memory, never extracted to disk.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

from cxr_edge.atomic import write_atomic
from cxr_edge.bundle.files import BUNDLE_FILES, BundleError

MAX_MEMBER_BYTES = 512 * 1024 * 1024  # far above the largest model (about 57 MB for int8 AlexNet)
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # archives of the same bundle have the same bytes


def _check_member(path: Path, info: zipfile.ZipInfo, seen: set[str]) -> None:
    name = info.filename
    where = f"{path}: member {name!r}"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"{where} has an absolute name; refusing the archive")
    if ".." in name.replace("\\", "/").split("/"):
        raise BundleError(f"{where} contains '..'; refusing the archive")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise BundleError(f"{where} is a symbolic link; refusing the archive")
    if info.is_dir() or name not in BUNDLE_FILES:
        raise BundleError(f"{where} is not a bundle file (expected only {', '.join(BUNDLE_FILES)})")
    if name in seen:
        raise BundleError(f"{where} appears twice; refusing the archive")
    if info.file_size > MAX_MEMBER_BYTES:
        raise BundleError(f"{where} is {info.file_size} bytes, over the {MAX_MEMBER_BYTES}-byte limit")
    seen.add(name)


def read_archive(path: os.PathLike | str) -> dict[str, bytes]:
    """The members of a .cxrb archive by name, after checking all of them."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            seen: set[str] = set()
            for info in infos:
                _check_member(path, info, seen)
            contents = {}
            for info in infos:
                with zf.open(info) as fh:
                    data = fh.read(MAX_MEMBER_BYTES + 1)
                if len(data) != info.file_size:
                    raise BundleError(f"{path}: member {info.filename!r} holds {len(data)} bytes, its header says "
                                      f"{info.file_size}")
                contents[info.filename] = data
            return contents
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{path}: not a .cxrb bundle archive ({exc})") from None
    except (zipfile.LargeZipFile, EOFError, OSError, RuntimeError) as exc:  # CRC errors, truncation, encryption
        raise BundleError(f"{path}: damaged bundle archive ({type(exc).__name__}: {exc})") from None


def pack(contents: dict[str, bytes]) -> bytes:
    """A .cxrb archive's bytes: the bundle files in a fixed order, with fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in BUNDLE_FILES:
            if name in contents:
                info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, contents[name])
    return buffer.getvalue()


def write_archive(folder: os.PathLike | str, out: os.PathLike | str) -> Path:
    """Pack a bundle folder into one .cxrb file, atomically."""
    folder, out = Path(folder), Path(out)
    write_atomic(out, pack({name: (folder / name).read_bytes() for name in BUNDLE_FILES if (folder / name).is_file()}))
    return out
