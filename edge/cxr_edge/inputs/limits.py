"""Sizes bounded before work is done: a DICOM object's pixel count from its header before any pixel data is
decoded, and a deflated dataset inflated as a stream, never whole, stopping at a limit. A 0.5 MB deflated C-STORE
claiming 16384 x 16384 pixels, or a 788-byte RLE image claiming 65535 x 65535, is refused before it costs the box
its memory (a Raspberry Pi has 4 GB).

The limits sit well above any chest radiograph: 50 million pixels (a 43 x 43 cm plate at 0.06 mm), and a dataset of
256 MB once inflated (those pixels at 16 bits, and room for the header)."""

from __future__ import annotations

import io
import zlib

MAX_PIXELS = 50_000_000  # rows x columns x frames x samples per pixel
MAX_INFLATED = 256 * 2**20  # bytes of a deflated dataset once inflated
HEADER_BYTES = 16 * 2**20  # of an inflated dataset, what its header is read from (it precedes the pixel data)
DEFLATED = "1.2.840.10008.1.2.1.99"
_CHUNK = 2**20
_PIXEL_DATA = 0x7FE00010


class TooLarge(ValueError):
    """An object over a limit, refused before decoding: the message says what it claims and what the box takes."""


def check_pixels(ds) -> None:
    """TooLarge when the header claims more than MAX_PIXELS (rows x columns x frames x samples)."""
    def number(keyword: str, default: int) -> int:
        try:
            return max(0, int(ds.get(keyword) or default))
        except Exception:  # noqa: BLE001 - a damaged value (pydicom raises many types): the decoder says what
            return default

    rows, columns = number("Rows", 0), number("Columns", 0)
    frames, samples = number("NumberOfFrames", 1), number("SamplesPerPixel", 1)
    if rows * columns * max(frames, 1) * max(samples, 1) > MAX_PIXELS:
        raise TooLarge(f"too large: {columns} x {rows} pixels, {frames} frame(s), {samples} sample(s) each "
                       f"(at most {MAX_PIXELS:,} pixels in all); not decoded")


def header_of(data: bytes):
    """The header (no pixel data) of a DICOM Part 10 object held in memory, as pydicom's
    `dcmread(..., stop_before_pixels=True)` gives it, and its pixel count checked (check_pixels). A deflated dataset
    is inflated as a stream: only its first HEADER_BYTES are kept, and TooLarge is raised once it passes
    MAX_INFLATED. Raises what pydicom raises for bytes that do not parse."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset

    meta_end, meta = _file_meta(data)
    if str(meta.get("TransferSyntaxUID", "")) != DEFLATED:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    else:
        inflated = inflated_head(io.BytesIO(memoryview(data)[meta_end:]))
        ds = read_dataset(io.BytesIO(inflated), is_implicit_VR=False, is_little_endian=True,
                          stop_when=lambda tag, vr, length: tag == _PIXEL_DATA)
        ds.file_meta = FileMetaDataset(meta)
    check_pixels(ds)
    return ds


def check_deflated_file(path) -> None:
    """TooLarge when a deflated DICOM file would inflate past MAX_INFLATED (read as a stream: pydicom would inflate
    it whole to read it); other files pass."""
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
        try:
            meta_end, meta = _file_meta(head)
        except Exception:  # noqa: BLE001 - not Part 10, or damaged: the reader says why
            return
        if str(meta.get("TransferSyntaxUID", "")) == DEFLATED:
            fh.seek(meta_end)
            inflated_head(fh)


def inflated_head(stream) -> bytes:
    """The first HEADER_BYTES of a raw deflate stream, inflating all of it in steps of a megabyte to check its
    size: TooLarge past MAX_INFLATED."""
    inflater, head, total = zlib.decompressobj(-zlib.MAX_WBITS), bytearray(), 0

    def take(out: bytes) -> None:
        nonlocal total
        total += len(out)
        if total > MAX_INFLATED:
            raise TooLarge(f"too large once inflated: more than {MAX_INFLATED // 2**20} MB from a deflated dataset; "
                           "not inflated further")
        if len(head) < HEADER_BYTES:
            head.extend(out[:HEADER_BYTES - len(head)])

    while chunk := stream.read(_CHUNK):
        take(inflater.decompress(chunk, _CHUNK))
        while inflater.unconsumed_tail:
            take(inflater.decompress(inflater.unconsumed_tail, _CHUNK))
    take(inflater.flush())
    return bytes(head)


def _file_meta(data: bytes):
    """(where the dataset starts, the file meta information) of Part 10 bytes: a preamble, "DICM", group 2."""
    from pydicom.filereader import read_dataset

    if bytes(data[128:132]) != b"DICM":
        raise ValueError("not DICOM Part 10: no DICM prefix")
    stream = io.BytesIO(memoryview(data)[132:])
    meta = read_dataset(stream, is_implicit_VR=False, is_little_endian=True,
                        stop_when=lambda tag, vr, length: tag.group != 2)
    return 132 + stream.tell(), meta
