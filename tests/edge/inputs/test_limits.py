"""Sizes bounded before decoding: the bombs of tests/bombs.py are refused by the image reader (a stick, the node's
worker) and by the receiver's header read, each within a few tens of megabytes; an ordinary deflated image still
reads whole."""

import resource

import numpy as np
import pytest

from cxr_edge.inputs.dicom import read_dicom
from cxr_edge.inputs.limits import MAX_INFLATED, TooLarge, header_of

from tests.bombs import deflated_bomb, rle_bomb


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_the_bombs_are_refused_before_decoding_by_the_reader_and_the_receiver(tmp_path):
    deflated, rle = deflated_bomb(tmp_path / "deflated.dcm"), rle_bomb(tmp_path / "rle.dcm")
    before = _peak_mb()
    for bomb, said in ((deflated, f"more than {MAX_INFLATED // 2**20} MB"), (rle, "65535 x 65535 pixels")):
        with pytest.raises(TooLarge, match=said):
            read_dicom(bomb)
        with pytest.raises(TooLarge, match=said):
            header_of(bomb.read_bytes())
    assert _peak_mb() - before < 50  # this process's peak: the 512 MB never held


def test_an_ordinary_deflated_image_reads_whole(tmp_path):
    small = deflated_bomb(tmp_path / "small.dcm", side=600)
    header = header_of(small.read_bytes())
    assert (header.Rows, "PixelData" in header, header.PatientID) == (600, False, "BOMB-1")
    image = read_dicom(small)
    assert image.pixels.shape == (600, 600) and image.pixels.dtype == np.uint8
