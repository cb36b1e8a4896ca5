import io

import numpy as np
import pytest
from PIL import Image

from cxr_edge.inputs.images import ImageError, load_image, prepare, to_model_input

GRADIENT = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1))  # 48 x 64, values 0..252


def _save(tmp_path, name, img, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def test_8bit_grayscale_keeps_its_values(tmp_path):
    path = _save(tmp_path, "g.png", Image.fromarray(GRADIENT, "L"))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (48, 64)
    np.testing.assert_array_equal(out, GRADIENT)


def test_16bit_png_is_scaled_by_its_real_range_not_clipped(tmp_path):
    values = (np.arange(64, dtype=np.uint16) * 64 + 1000)[None, :].repeat(8, 0)  # 1000..5032: a 12-bit image
    path = _save(tmp_path, "g16.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I")
    out = load_image(path)
    assert out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out[0].astype(int)) >= 0)  # monotone, no clipping plateau
    assert len(np.unique(out)) == 64


def test_32bit_integer_mode_is_scaled(tmp_path):
    values = (np.arange(64, dtype=np.int32) * 1000 - 5000)[None, :].repeat(4, 0)
    path = _save(tmp_path, "i.tif", Image.fromarray(values, "I"))
    out = load_image(path)
    assert out[0, 0] == 0 and out[0, -1] == 255


@pytest.mark.parametrize("mode", ["LA", "RGB", "RGBA", "P", "CMYK", "1"])
def test_color_and_other_modes_become_grayscale(tmp_path, mode):
    rgb = Image.fromarray(np.stack([GRADIENT] * 3, -1), "RGB")
    img = rgb.convert(mode)
    suffix = "tif" if mode == "CMYK" else "png"
    path = _save(tmp_path, f"m.{suffix}", img)
    out = load_image(path)
    assert out.shape == (48, 64) and out.dtype == np.uint8
    if mode not in ("P", "1"):  # palette and bilevel quantize; the rest keep the gray levels
        np.testing.assert_allclose(out.astype(int), GRADIENT.astype(int), atol=2)


@pytest.mark.parametrize("fmt, suffix", [("JPEG", "jpg"), ("BMP", "bmp"), ("TIFF", "tiff")])
def test_jpeg_bmp_tiff_decode(tmp_path, fmt, suffix):
    path = _save(tmp_path, f"x.{suffix}", Image.fromarray(GRADIENT, "L"), format=fmt)
    out = load_image(path)
    np.testing.assert_allclose(out.astype(int), GRADIENT.astype(int), atol=6 if fmt == "JPEG" else 0)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(GRADIENT, "L")  # 64 wide, 48 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(tmp_path, "rot.jpg", img, exif=exif.tobytes(), quality=95)
    out = load_image(path)
    assert out.shape == (64, 48)
    # after a clockwise turn the dark left edge of the gradient is at the top
    assert out[:4].mean() < out[-4:].mean()


def test_multiframe_tiff_takes_the_first_frame(tmp_path):
    first = Image.fromarray(np.full((16, 16), 10, np.uint8), "L")
    second = Image.fromarray(np.full((16, 16), 200, np.uint8), "L")
    path = tmp_path / "multi.tif"
    first.save(path, save_all=True, append_images=[second])
    assert Image.open(path).n_frames == 2
    assert load_image(path).max() == 10


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_bytes(b"this is not an image at all" * 10), "not an image"),
    (lambda p: p.write_bytes(_png_bytes()[:200]), "truncated or corrupt"),
])
def test_each_failure_names_the_file_and_the_problem(tmp_path, make, problem):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_guard_stays_on(tmp_path, monkeypatch):
    path = _save(tmp_path, "big.png", Image.fromarray(np.zeros((100, 100), np.uint8), "L"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(ImageError, match="too large"):
        load_image(path)


def test_unsupported_format_is_refused(tmp_path):
    path = _save(tmp_path, "x.gif", Image.fromarray(GRADIENT, "L"), format="GIF")
    with pytest.raises(ImageError, match="supported format"):
        load_image(path)


def test_to_model_input_is_square_uint8_with_a_channel():
    out = to_model_input(GRADIENT, 32)
    assert out.shape == (32, 32, 1) and out.dtype == np.uint8
    # the horizontal gradient survives the resize
    assert out[0, 0, 0] < out[0, -1, 0]


def test_to_model_input_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(GRADIENT.astype(np.float32), 32)


def test_prepare_is_deterministic(tmp_path):
    path = _save(tmp_path, "g.png", Image.fromarray(GRADIENT, "L"))
    np.testing.assert_array_equal(prepare(path, 40), prepare(path, 40))


def _png_bytes():
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), "L").save(buf, "PNG")
    return buf.getvalue()
