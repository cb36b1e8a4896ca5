"""Finding the images on a USB stick: recursive, sorted, skipping what cameras, macOS and Windows leave there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from cxr_edge.inputs.dicom import looks_like_dicom
from cxr_edge.inputs.images import IMAGE_SUFFIXES

# Folders that operating systems create on removable drives; never radiographs.
SYSTEM_FOLDERS = frozenset({"System Volume Information", ".Trashes", ".Spotlight-V100", "$RECYCLE.BIN",
                            ".fseventsd", ".TemporaryItems", "RECYCLER", "lost+found"})


def is_candidate(path: Path) -> bool:
    """An image file we should try: not hidden (nor a macOS AppleDouble `._` file), with an image suffix,
    or with no suffix and the DICOM preamble (X-ray machines often export DICOM files without one)."""
    if path.name.startswith("."):
        return False
    suffix = path.suffix.lower()
    return suffix in IMAGE_SUFFIXES or (suffix == "" and looks_like_dicom(path))


def find_image_names(folder: os.PathLike | str, recursive: bool = True) -> list[str]:
    """Image files under `folder` as sorted relative paths ('/'-separated); symbolic links to folders are not
    followed. Plain strings, not Path objects: a Path costs about 2.5 kB, which a 100,000-image stick notices."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    return sorted(_walk(str(folder), "", recursive))


def find_images(folder: os.PathLike | str, recursive: bool = True) -> list[Path]:
    """find_image_names as full paths, for small folders."""
    return [Path(folder) / name for name in find_image_names(folder, recursive)]


def _walk(folder: str, prefix: str, recursive: bool) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except PermissionError:
        return  # an unreadable sub-folder holds nothing we can classify
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive and not entry.name.startswith(".") and entry.name not in SYSTEM_FOLDERS:
                yield from _walk(entry.path, f"{prefix}{entry.name}/", recursive)
        elif not (entry.is_symlink() and os.path.isdir(entry.path)) and is_candidate(Path(entry.path)):
            yield prefix + entry.name
