"""The image contract, written once and used by training, conversion and the box.

decode -> grayscale uint8 (`load_image`) -> square resize with a fixed filter (`to_model_input`).
Models take these raw uint8 pixels; scaling to floats happens inside the model graph, so the TFLite model
carries it and the box does no float preprocessing. Change anything here and bump IMAGE_CONTRACT_VERSION:
bundles record the version they were converted with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cxr_edge.inputs.dicom import NoPixelData, looks_like_dicom, read_dicom
from cxr_edge.inputs.levels import integer_to_uint8, to_uint8

# 4: DICOM whose header gives no window is scaled from its 0.5th..99.5th percentile, not its minimum..maximum, when
# outliers (dead or burned-in pixels) make that range less than half the other; all else is unchanged.
# 3: JPEG 2000 DICOM is decoded at a reduced resolution too (wavelet levels discarded, never below twice the
# model size): 2560-px images decode 13x cheaper. 2: a JPEG larger than twice the model size is decoded at a
# reduced DCT scale (1/2 to 1/8, same floor): 3x cheaper. Every other image, and everything up to twice the model
# size (the Database's 299-px PNGs), keeps version 1's pixels. Measured on full-size files: docs/benchmarks.md, "Image
# contracts 2 and 3" and "Image contract 4".
IMAGE_CONTRACT_VERSION = 4
RESIZE_FILTER = "bilinear"  # Pillow's bilinear, antialiased when shrinking; integer arithmetic for mode L
_RESIZE = Image.Resampling.BILINEAR
SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm")
MAX_FILE_BYTES = 256 * 1024 * 1024  # far above any radiograph; guards a box with little memory
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


class ImageError(ValueError):
    """An image file that cannot be used; the message names the file and what was wrong."""

    def __init__(self, path: os.PathLike | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NotAnImage(ImageError):
    """A file that is not an image and not an error either (a DICOMDIR, a structured report): skipped."""

    def __init__(self, path: os.PathLike | str, kind: str):
        super().__init__(path, f"{kind}: not an image")
        self.kind = kind


def load_image(path: os.PathLike | str, size: int | None = None) -> np.ndarray:
    """load_radiograph without the header's reasons."""
    return load_radiograph(path, size)[0]


def load_radiograph(path: os.PathLike | str, size: int | None = None) -> tuple[np.ndarray, list]:
    """Decode an image file to a 2-D uint8 grayscale array, with the reasons its DICOM header gives to refer it
    (read_radiograph, without the header)."""
    image = read_radiograph(path, size)
    return image.gray, image.reasons


class Radiograph(NamedTuple):
    gray: np.ndarray  # 2-D uint8
    reasons: list  # cxr_edge.reasons.Reason: what the DICOM header gives to refer the image
    header: object = None  # a DICOM file's header (pydicom Dataset, no pixel data); None for other formats


def read_radiograph(path: os.PathLike | str, size: int | None = None) -> Radiograph:
    """Decode an image file to a 2-D uint8 grayscale array, with the reasons its DICOM header gives to refer it
    and, for DICOM, the header itself (the file is read once: nothing after needs to parse it again).
    With `size` (the model's input size), a JPEG or JPEG 2000 DICOM may be decoded at a reduced scale, never
    below twice `size`: only the work the model input needs.

    DICOM files (.dcm, or any file with the DICOM preamble) go through cxr_edge.inputs.dicom (the header's window, or
    with none the image's own range, or its 0.5th..99.5th percentile when outliers dominate). For the rest: 8-bit
    data keeps its values; 16-bit and 32-bit data are scaled linearly from the image's own minimum..maximum to
    0..255. JPEG/TIFF EXIF orientation is applied, multi-frame files give their first frame, and Pillow's
    decompression-bomb guard stays on.
    """
    path = Path(path)
    _check_file(path)
    if looks_like_dicom(path):
        try:
            image = read_dicom(path, size)
            return Radiograph(image.pixels, image.refer, image.header)
        except NoPixelData as exc:
            raise NotAnImage(path, exc.kind) from None
        except ValueError as exc:
            raise ImageError(path, str(exc)) from None
        except MemoryError:
            raise ImageError(path, "too large to decode in the memory available") from None
    try:
        with Image.open(path, formats=SUPPORTED_FORMATS) as img:
            _check_pixels(path, img)
            img.seek(0)
            if size and img.format == "JPEG":
                img.draft(img.mode, (2 * size, 2 * size))  # DCT scaling 1/2..1/8, never below 2x the size
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # in place: no copy (13 MB) of an image that needs no turn
            gray = _to_gray(path, img)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(path, f"too large: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image in a supported format (PNG, JPEG, BMP or TIFF)") from None
    except MemoryError:
        raise ImageError(path, "too large to decode in the memory available") from None
    except Exception as exc:  # Pillow's decoders raise many types on malformed data: all mean "corrupt"
        raise ImageError(path, f"truncated or corrupt image data ({type(exc).__name__}: {exc})") from None
    if gray.ndim != 2 or gray.size == 0:
        raise ImageError(path, f"decoded to an unusable array of shape {gray.shape}")
    return Radiograph(gray, [])


def to_model_input(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D uint8 grayscale image to the model's (size, size, 1) uint8 input."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 grayscale image, got shape {gray.shape} dtype {gray.dtype}")
    if size < 1:
        raise ValueError(f"model input size must be positive, got {size}")
    resized = Image.fromarray(gray, mode="L").resize((size, size), _RESIZE)
    return np.asarray(resized, dtype=np.uint8)[:, :, np.newaxis]


def prepare(path: os.PathLike | str, size: int) -> np.ndarray:
    """load_image then to_model_input: a file straight to the model's uint8 input."""
    return to_model_input(load_image(path, size), size)


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except OSError as exc:
        raise ImageError(path, f"cannot be read ({exc.strerror or exc})") from None
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    if size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise ImageError(path, f"too large: {size} bytes, the limit is {MAX_FILE_BYTES} bytes")


def _check_pixels(path: Path, img: Image.Image) -> None:
    width, height = img.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        raise ImageError(path, f"too large: {width}x{height} pixels, the limit is {limit} pixels")


def _to_gray(path: Path, img: Image.Image) -> np.ndarray:
    if img.mode in _HIGH_DEPTH_MODES:
        return _scale_to_uint8(np.asarray(img))
    if img.mode == "L":
        return np.array(img, dtype=np.uint8)
    if img.mode in ("PA", "P"):
        img = img.convert("RGBA")
    if img.mode not in ("1", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"):
        raise ImageError(path, f"unsupported image mode {img.mode!r}: save it as 8- or 16-bit grayscale or RGB")
    if img.mode == "CMYK":
        img = img.convert("RGB")
    return np.array(img.convert("L"), dtype=np.uint8)


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    gray = integer_to_uint8(values)  # 16-bit data: a lookup table, no float64 copy of the image
    if gray is not None:
        return gray
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    return to_uint8(values)
