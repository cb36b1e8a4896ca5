"""Finding the images on a USB stick: recursive, sorted, skipping what cameras, macOS and Windows leave there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from cxr_edge.inputs.dicom import looks_like_dicom
from cxr_edge.inputs.images import IMAGE_SUFFIXES
from cxr_edge.language import N_

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


# Kinds of files a stick holds that are not classified, as the summaries count them.
# kinds of what the listing passes over, counted in every report (translated where shown: cxr_edge.language)
HIDDEN = N_("hidden or system file")
NOT_AN_IMAGE = N_("not an image")
FOLDER_LINK = N_("link to a folder (not followed)")


def find_files(folder: os.PathLike | str, recursive: bool = True) -> tuple[list[str], dict[str, int]]:
    """The image files under `folder` as sorted relative paths ('/'-separated), and how many entries were passed
    over, by kind: hidden or system files and folders (a system folder counts once), files that are not images,
    links to folders (never followed). Plain strings, not Path objects: a Path costs about 2.5 kB, which a
    100,000-image stick notices."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    names, skipped = [], {}
    for name, kind in _walk(str(folder), "", recursive):
        if kind is None:
            names.append(name)
        else:
            skipped[kind] = skipped.get(kind, 0) + 1
    return sorted(names), dict(sorted(skipped.items()))


def find_image_names(folder: os.PathLike | str, recursive: bool = True) -> list[str]:
    """find_files' image names alone."""
    return find_files(folder, recursive)[0]


def find_images(folder: os.PathLike | str, recursive: bool = True) -> list[Path]:
    """find_image_names as full paths, for small folders."""
    return [Path(folder) / name for name in find_image_names(folder, recursive)]


def _walk(folder: str, prefix: str, recursive: bool) -> Iterator[tuple[str, str | None]]:
    """(relative name, None) for each image file; (relative name, kind) for each entry passed over."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except PermissionError:
        return  # an unreadable sub-folder holds nothing we can classify
    for entry in entries:
        name = prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            if entry.name.startswith(".") or entry.name in SYSTEM_FOLDERS:
                yield name, HIDDEN
            elif recursive:
                yield from _walk(entry.path, f"{name}/", recursive)
        elif entry.is_symlink() and os.path.isdir(entry.path):
            yield name, FOLDER_LINK
        elif entry.name.startswith("."):
            yield name, HIDDEN
        else:
            yield name, None if is_candidate(Path(entry.path)) else NOT_AN_IMAGE
