"""DICOM radiographs, read with pydicom and its GDCM decoder plugin, and libjpeg-turbo through imagecodecs for
lossless and 12-bit JPEG (all in the base install, none GPL): every common transfer syntax (uncompressed little
and big endian, deflated, RLE, JPEG baseline and 12-bit Extended, JPEG Lossless Process 14 and SV1, JPEG-LS,
JPEG 2000).

Pixel data with the modality LUT and the VOI LUT or window applied, MONOCHROME1 (or Presentation LUT Shape
INVERSE) inverted, then scaled to the image contract's 2-D uint8 (from the window's range, or with no window from
the image's own range, or its 0.5th..99.5th percentile when outliers dominate: cxr_edge.inputs.levels). A DICOM object
without pixel data that holds none by design (DICOMDIR, structured report, presentation state, RT plan, ECG
waveform, ...) is not an image: NoPixelData names its kind.

The header is used for safety only: a lateral or oblique view, a body part other than the chest, a modality
other than radiography, or a "for processing" image is referred, with the reason as a code. No header value
(patient name, ID, dates, age, or any other) is ever put into a result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxr_edge.inputs.levels import integer_to_uint8, to_uint8
from cxr_edge.inputs.limits import MAX_PIXELS, check_deflated_file, check_pixels
from cxr_edge.reasons import Reason

PREAMBLE = 128  # bytes before the "DICM" magic in a DICOM Part 10 file


def looks_like_dicom(path: os.PathLike | str) -> bool:
    """A .dcm file, or any file with the DICOM Part 10 preamble ("DICM" at byte 128)."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(PREAMBLE)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


class NoPixelData(ValueError):
    """A DICOM object that is not an image; `kind` says what it is, in words."""

    def __init__(self, kind: str):
        super().__init__(f"{kind}: a DICOM object without pixel data, not an image")
        self.kind = kind


@dataclass(frozen=True)
class DicomImage:
    pixels: np.ndarray  # 2-D uint8, the image contract's
    refer: list[Reason]  # reasons from the header to refer the image to a clinician
    header: object = None  # the pydicom Dataset without its pixel data: what the SR is made from, parsed once


# What the models were trained on: frontal chest radiographs. Empty means the header does not say.
FRONTAL_VIEWS = frozenset({"", "PA", "AP"})
CHEST_PARTS = frozenset({"", "CHEST", "THORAX", "LUNG", "LUNGS", "CHEST_LUNG"})
RADIOGRAPHY = frozenset({"", "CR", "DX", "DR", "RG"})  # DR is not a DICOM term, but units write it
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
# cxr-edge's own results (cxr_edge.record.dicom): a heatmap capture is an image, but never a radiograph to classify
OWN_MANUFACTURER = "cxr-edge"
OWN_SERIES = "cxr-edge AI pre-diagnosis"
OWN_RESULT = "cxr-edge result"


def is_own_result(ds) -> bool:
    """An SR or heatmap the box wrote itself, come back (a PACS routing rule, results copied onto a stick)."""
    return str(ds.get("Manufacturer", "")) == OWN_MANUFACTURER and str(ds.get("SeriesDescription", "")) == OWN_SERIES


def _kind(ds) -> str | None:
    """What a DICOM object without pixel data is, from its SOP class (no header value beyond that), or None
    when it should have held an image. Every storage class whose standard name does not say "Image" holds no
    image by design (structured reports, key object selections, presentation states, encapsulated documents,
    RT plans and structure sets, waveforms such as ECGs, raw data); an "... Image Storage" object without pixel
    data, or one of a class pydicom does not know, is a damaged file: an error row."""
    sop = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or ds.get("SOPClassUID", ""))
    if sop == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        return "DICOMDIR"
    name = _uid_name(sop)
    if not name or "Image" in name:
        return None
    return name.removesuffix(" Storage")


def _uid_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name if uid else ""
    return "" if name == uid else name


def header_reasons(ds) -> list[Reason]:
    """Why the header says this is not an image the models were trained for, as codes (cxr_edge.reasons): no
    value from the header is copied into them."""
    reasons = []
    text = lambda keyword: str(ds.get(keyword, "") or "").strip().upper()  # noqa: E731
    if text("ViewPosition") not in FRONTAL_VIEWS:
        reasons.append(Reason("not_frontal"))
    if text("BodyPartExamined") not in CHEST_PARTS:
        reasons.append(Reason("body_part"))
    if text("Modality") not in RADIOGRAPHY:
        reasons.append(Reason("modality"))
    if text("PresentationIntentType") == "FOR PROCESSING":
        reasons.append(Reason("for_processing"))
    return reasons


def read_dicom(path: os.PathLike | str, size: int | None = None) -> DicomImage:
    """The first frame as 2-D uint8 grayscale, and the header's reasons to refer it. With `size` (the model's
    input size), JPEG 2000 is decoded at a reduced resolution, never below twice `size`. Raises NoPixelData for an
    object that is not an image, and ValueError with a message naming the problem for one that cannot be read."""
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:
        raise ValueError("a DICOM file, and pydicom is not installed: run `pip install 'cxr-edge[dicom]'`") from None
    check_deflated_file(path)  # pydicom inflates a deflated file whole: a bomb is refused first (TooLarge)
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:  # pydicom raises many types for a damaged file
        raise ValueError(f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    if is_own_result(ds):
        raise NoPixelData(OWN_RESULT)
    if "PixelData" not in ds:
        if kind := _kind(ds):
            raise NoPixelData(kind)
        if getattr(ds, "preamble", None) is None and "SOPClassUID" not in ds:  # what force=True makes of any bytes
            raise ValueError("not a DICOM file: no DICOM header in it (another kind of file with a .dcm name?); "
                             "export the image from the X-ray unit again")
        raise ValueError("a DICOM file with no pixel data (damaged, or not an image)")
    check_pixels(ds)  # from the header, before any pixel is decoded
    pixels = _stored_frame(ds, size)
    if pixels.ndim == 3:  # colour (a secondary capture, a digitised film): gray as a colour PNG is
        return DicomImage(_colour_to_gray(pixels), header_reasons(ds), without_pixels(ds))
    inverse = _inverse(ds)

    def windowed(stored):  # modality LUT or rescale, then the VOI LUT or first window, as the header says
        return apply_voi_lut(apply_modality_lut(stored, ds), ds)

    tails = 0.0 if _has_window(ds) else NO_WINDOW_TAILS
    gray = integer_to_uint8(pixels, windowed, inverse, tails)
    if gray is None:  # float pixel data, or integers spanning more than 16 bits
        # the LUT functions return new arrays, or `pixels` itself, which is ours: overwriting it is safe
        gray = to_uint8(windowed(pixels), inverse, overwrite=True, tails=tails)
    return DicomImage(gray, header_reasons(ds), without_pixels(ds))


def _stored_frame(ds, size: int | None) -> np.ndarray:
    """The first frame's stored values, 2-D, by the fastest decoder that applies (with `size`, JPEG 2000 at a
    reduced resolution); ValueError naming the syntax when none can, or when it is no single grayscale frame."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        pixels = _reduced_jpeg2000(ds, size)
        if pixels is None:
            pixels = _libjpeg_turbo(ds)
        if pixels is None:
            pixels = _pixel_array(ds)
    except Exception as exc:
        name = getattr(syntax, "name", str(syntax))
        raise ValueError(f"DICOM pixel data in transfer syntax '{name}' cannot be decoded here "
                         f"({type(exc).__name__}): damaged, or a variant no decoder here reads; export it "
                         "uncompressed") from None
    colour = ds.get("SamplesPerPixel", 1) == 3
    if pixels.ndim == (4 if colour else 3):
        pixels = pixels[0]  # multi-frame: the first frame
    if pixels.shape[2:] != ((3,) if colour else ()):
        raise ValueError(f"DICOM image of shape {pixels.shape}: a grayscale or RGB frame is expected")
    return pixels


def _colour_to_gray(rgb: np.ndarray) -> np.ndarray:
    """A colour frame (pydicom gives RGB, YBR converted) as the image contract makes a colour PNG or JPEG gray:
    Pillow's ITU-R 601-2 luma, after scaling deeper samples to 8 bits together."""
    from PIL import Image

    if rgb.dtype != np.uint8:
        rgb = to_uint8(rgb.astype(np.float64), False, overwrite=True, tails=0.0)
    return np.array(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"), dtype=np.uint8)


def _inverse(ds) -> bool:
    """Whether low values are bright (MONOCHROME1, or an inverse presentation LUT)."""
    return ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1" or \
        str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"


def without_pixels(ds):
    """The dataset as `dcmread(..., stop_before_pixels=True)` gives it, from one read whole: the pixel data and
    anything after it dropped (the decoded pixels are held elsewhere; the compressed bytes need not be)."""
    for tag in [tag for tag in ds.keys() if tag >= PIXEL_TAGS_FROM]:
        del ds[tag]
    return ds


PIXEL_TAGS_FROM = 0x7FE00008  # Float Pixel Data, Double Float Pixel Data, Pixel Data, and what follows them


MAX_FULL_PIXELS = MAX_PIXELS  # the full-resolution view: one limit for every decode (cxr_edge.inputs.limits)


@dataclass(frozen=True)
class FullImage:
    """A DICOM image at full resolution and bit depth, for the viewer: the first frame's values after the modality
    LUT (what window/level applies to), the header's windows (centre, width), and whether low values are bright."""

    values: np.ndarray  # 2-D, integer or float
    windows: tuple[tuple[float, float], ...]
    invert: bool


def read_full(path: os.PathLike | str) -> FullImage:
    """The first frame at full resolution with its windows; ValueError naming the problem for a file that is not a
    single grayscale frame, or one too large (MAX_FULL_PIXELS, checked before decoding)."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    check_deflated_file(path)
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:  # pydicom raises many types for a damaged file
        raise ValueError(f"not a readable DICOM file ({type(exc).__name__})") from None
    if "PixelData" not in ds:
        raise ValueError("no pixel data")
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if not 0 < rows * columns <= MAX_FULL_PIXELS or ds.get("SamplesPerPixel", 1) != 1:
        raise ValueError(f"not shown at full resolution: {columns}x{rows} pixels, {ds.get('SamplesPerPixel', 1)} "
                         f"sample(s) each (at most {MAX_FULL_PIXELS:,} grayscale pixels)")
    return FullImage(apply_modality_lut(_stored_frame(ds, None), ds), _windows(ds), _inverse(ds))


def _windows(ds) -> tuple[tuple[float, float], ...]:
    """The header's windows (centre, width): one pair, or several (Window Center and Width may be multi-valued)."""
    centres, widths = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centres is None or widths is None:
        return ()
    from pydicom.multival import MultiValue

    def as_list(value) -> list:
        return list(value) if isinstance(value, MultiValue) else [value]

    try:
        return tuple((float(c), float(w)) for c, w in zip(as_list(centres), as_list(widths)) if float(w) > 0)
    except (TypeError, ValueError):
        return ()


# With no window in the header, the range is the 0.5th..99.5th percentile of the values when outliers make it less
# than half the minimum..maximum (cxr_edge.inputs.levels): dead pixels or a burned-in marker no longer set it. Contract 4;
# what it does to a bundle's outputs against contract 3's minimum..maximum: docs/benchmarks.md, "Image contract 4".
NO_WINDOW_TAILS = 0.005


def _has_window(ds) -> bool:
    """Whether apply_voi_lut will apply something: a VOI LUT with its descriptor and data, or a window with centre
    and width (pydicom's own test; an empty element counts as absent)."""
    lut = ds.get("VOILUTSequence")
    return bool(lut) and None not in (lut[0].get("LUTDescriptor"), lut[0].get("LUTData")) or \
        None not in (ds.get("WindowCenter"), ds.get("WindowWidth"))


def _pixel_array(ds) -> np.ndarray:
    """ds.pixel_array, surviving what units have been seen to write: no file meta header (the syntax then comes
    from how the data set was encoded), and JPEG-family data under the wrong transfer syntax or not encapsulated
    (the syntax then comes from the codestream's own markers, and the data is encapsulated as the standard says)."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, _ = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    try:
        return ds.pixel_array
    except Exception:
        declared = ds.file_meta.TransferSyntaxUID
        found = _syntax_of_codestream(bytes(ds.PixelData[:65536]))
        if found is None or found == declared:
            raise
        if not bytes(ds.PixelData[:4]) == _ITEM_TAG:
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([bytes(ds.PixelData)])
        ds.file_meta.TransferSyntaxUID = found
        return ds.pixel_array


_JPEG2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",  # JPEG 2000 lossless, lossy
             "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")  # HTJ2K


# Pillow's OpenJPEG reads its codestream through Python, so it keeps Python's lock while it decodes and a second
# decode thread cannot help; OpenJPEG's own threads can (it reads this variable as each decoder is made): 56 -> 32
# ms per 2560-px radiograph at 640 px on 2 cores, the same pixels. Set once, on import, before any decode thread.
os.environ.setdefault("OPJ_NUM_THREADS", str(os.cpu_count() or 1))

# The wavelet's low-pass band is a weaker anti-aliasing filter than Pillow's bilinear, so a JPEG 2000 decode keeps
# at least this many pixels on the short side as well as twice the model size: at 2 x 64 px (the tiny preset), 6 of
# 88 test labels moved, more than quantization moves them; at 512, 2 (docs/benchmarks.md, "Image contracts 2 and 3").
JPEG2000_MIN_SIDE = 512


def reduction_levels(rows: int, columns: int, size: int) -> int:
    """How many wavelet levels a JPEG 2000 decode may discard (each halves both sides) while the short side stays
    at least twice the model size (JPEG's rule too) and at least JPEG2000_MIN_SIDE."""
    least = max(2 * size, JPEG2000_MIN_SIDE)
    levels = 0
    while min(rows, columns) >> (levels + 1) >= least:
        levels += 1
    return levels


def _reduced_jpeg2000(ds, size: int | None) -> np.ndarray | None:
    """The first frame of JPEG 2000 pixel data decoded at a reduced resolution by Pillow's OpenJPEG (BSD): the
    discarded wavelet levels are never decoded, so a 2560-px radiograph takes 61 ms at 640 px instead of 790 ms
    (at full resolution Pillow and GDCM give the same pixels). None when this does not apply (no size, another syntax,
    colour or signed data, nothing to discard) or Pillow refuses the codestream: the caller decodes in full."""
    if not size or not _fast_path_applies(ds, _JPEG2000) or ds.get("BitsStored", 16) > 16:
        return None
    levels = reduction_levels(int(ds.Rows), int(ds.Columns), size)
    if levels == 0:
        return None
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(_first_frame(ds)), formats=["JPEG2000"]) as img:
            img.reduce = levels
            img.load()
            pixels = np.array(img)
    except Exception:  # fewer levels in the codestream than asked, or a codestream Pillow cannot read
        return None
    expected = (-(-int(ds.Rows) // (1 << levels)), -(-int(ds.Columns) // (1 << levels)))
    return pixels if pixels.shape == expected and pixels.dtype.kind == "u" else None


def _fast_path_applies(ds, syntaxes: tuple[str, ...]) -> bool:
    """Whether a decoder beside pydicom's plugins may take this data set: one of its transfer syntaxes, and one
    unsigned sample per pixel (colour and signed data go through pydicom, which handles them)."""
    return str(getattr(ds.file_meta, "TransferSyntaxUID", "")) in syntaxes and \
        ds.get("SamplesPerPixel", 1) == 1 and ds.get("PixelRepresentation", 0) == 0


def _first_frame(ds) -> bytes:
    """The first frame's codestream of encapsulated pixel data."""
    from pydicom.encaps import generate_frames

    return next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


# JPEG that libjpeg-turbo (3.0 and later) decodes: lossless Process 14 and SV1 (the same pixels as GDCM, by
# definition of lossless, in a fifth of the time: 41 ms for a 2560-px 12-bit radiograph against 215 ms, and with
# Python's lock let go, so both decode threads work) and 12-bit Extended, which GDCM does not decode.
_LIBJPEG_TURBO = ("1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")


def _libjpeg_turbo(ds) -> np.ndarray | None:
    """The first frame of lossless or 12-bit JPEG pixel data decoded by libjpeg-turbo (imagecodecs, BSD). None
    when this does not apply (another syntax, colour or signed data, values beyond Bits Stored) or the codestream
    is refused: the caller decodes through pydicom."""
    if not _fast_path_applies(ds, _LIBJPEG_TURBO):
        return None
    try:
        import imagecodecs

        pixels = imagecodecs.jpeg8_decode(_first_frame(ds))
    except Exception:  # no imagecodecs, not encapsulated, or a codestream libjpeg-turbo refuses
        return None
    fits = pixels.size == 0 or int(pixels.max()) < 1 << int(ds.get("BitsStored", 16))
    return pixels if pixels.shape == (int(ds.Rows), int(ds.Columns)) and pixels.dtype.kind == "u" and fits else None


_ITEM_TAG = b"\xfe\xff\x00\xe0"  # the first item of encapsulated pixel data
_JPEG_FRAMES = {b"\xff\xc0": "1.2.840.10008.1.2.4.50", b"\xff\xc1": "1.2.840.10008.1.2.4.51",
                b"\xff\xc3": "1.2.840.10008.1.2.4.57", b"\xff\xf7": "1.2.840.10008.1.2.4.80"}


def _syntax_of_codestream(head: bytes) -> str | None:
    """The transfer syntax a JPEG, JPEG-LS or JPEG 2000 codestream's markers name, or None."""
    from pydicom.uid import UID

    if b"\xff\x4f\xff\x51" in head:  # JPEG 2000: start of codestream, then image size
        return UID("1.2.840.10008.1.2.4.90")
    start = head.find(b"\xff\xd8")  # JPEG start of image, then its start-of-frame marker names the process
    frames = [(head.find(marker, start), uid) for marker, uid in _JPEG_FRAMES.items()] if start >= 0 else []
    frames = [(at, uid) for at, uid in frames if at > start]
    return UID(min(frames)[1]) if frames else None
