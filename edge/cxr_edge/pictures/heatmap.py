"""Occlusion heatmaps made on the box from the int8 models alone: which regions, when hidden, lower the
probability of the label given the most. Stage 2 explains a disease label, stage 1 a normal one.

Hiding each cell of a GRID x GRID grid (filled with the image's mean gray) costs GRID**2 extra inferences of
one model per image, batched; it is off by default. Heatmaps are drawn over the display image (visuals.display_image,
at most 1024 px a side), never the full-size radiograph: a 2560-px one made 2.2 MB files and 677 MB peak memory.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxr_edge.atomic import write_atomic
from cxr_edge.labels import LABELS, in_words
from cxr_edge.language import _, decimal
from cxr_edge.models.interpreter import predict_in_batches

GRID = 8


def occlusion_map(model, pixels: np.ndarray, class_index: int, grid: int = GRID, batch: int = 8) -> np.ndarray:
    """(grid, grid) drop in the class probability when each cell of the (size, size, 1) input is hidden."""
    size = pixels.shape[0]
    edges = np.linspace(0, size, grid + 1).astype(int)
    fill = np.uint8(round(float(pixels.mean())))
    variants = np.repeat(pixels[np.newaxis], grid * grid, axis=0)
    for i in range(grid):
        for j in range(grid):
            variants[i * grid + j, edges[i]:edges[i + 1], edges[j]:edges[j + 1]] = fill
    base = float(predict_in_batches(model, pixels[np.newaxis], batch)[0][0, class_index])
    probs = predict_in_batches(model, variants, batch)[0][:, class_index]
    return np.clip(base - probs, 0, None).reshape(grid, grid)


def overlay(gray: np.ndarray, heat: np.ndarray, caption: list[str] | None = None) -> Image.Image:
    """The radiograph in gray with the heat in red-to-yellow over it; with `caption`, its lines in a banner
    under the image (never over the lungs; the picture keeps the radiograph's size), in a font sized to fit the width and readable when the picture is
    printed a few centimetres wide."""
    height, width = gray.shape
    up = _heat_at(heat, width, height).astype(np.float32) / 255
    base = np.repeat(gray[:, :, np.newaxis].astype(np.float32), 3, axis=2)
    colour = np.stack([np.full_like(up, 255), 255 * up, np.zeros_like(up)], axis=2)  # red, yellow where hottest
    alpha = (0.55 * up)[:, :, np.newaxis]
    image = Image.fromarray(np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8), "RGB")
    return _with_banner(image, caption) if caption else image


def _heat_at(heat: np.ndarray, width: int, height: int) -> np.ndarray:
    """The heat scaled to its peak (0..255, uint8) and resized to `width` x `height`: what the picture and the
    viewer's layer both draw."""
    peak = float(heat.max())
    norm = heat / peak if peak > 0 else heat
    return np.asarray(Image.fromarray((norm * 255).astype(np.uint8), "L").resize((width, height),
                                                                              Image.Resampling.BILINEAR))


def heat_layer(heat: np.ndarray, width: int, height: int) -> Image.Image:
    """The heat alone, red to yellow, transparent where cold (RGBA at `width` x `height`): what the viewer lays
    over the image at any zoom, with the opacity the clinician chooses."""
    up = _heat_at(heat, width, height)
    rgba = np.stack([np.full_like(up, 255), up, np.zeros_like(up), up], axis=2)  # red, yellow where hottest
    return Image.fromarray(rgba, "RGBA")


FONT = Path(__file__).parent / "fonts" / "DejaVuSans.ttf"  # DejaVu Sans: every Latin accent (fonts/LICENSE.txt)
MIN_FONT_PX = 11  # smaller is not read on a printed picture a few centimetres wide
MAX_BANNER_SHARE = 0.4  # of the picture's height; beyond it the text gets smaller (never under MIN_FONT_PX)


def caption_font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans at `size` px, laid out by FreeType alone: Pillow would use libraqm where the system has FriBiDi
    and FreeType elsewhere, kerning differently, so that a Pi and the host would draw the same caption differently
    (the captions are in Latin script: nothing needs raqm's shaping)."""
    return ImageFont.truetype(str(FONT), size, layout_engine=ImageFont.Layout.BASIC)


def _wrapped(lines: list[str], font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """`lines` broken at spaces so that each fits `width` px in `font` (a word longer than the width stands alone)."""
    out = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            trial = f"{current} {word}" if current else word
            if current and font.getlength(trial) > width:
                out.append(current)
                current = word
            else:
                current = trial
        out.append(current)
    return out


def banner_layout(lines: list[str], width: int, height: int) -> tuple[int, list[str]]:
    """The caption's font size and its lines, wrapped to the width: a twenty-fourth of the width (13 px on a
    320-px picture, 42 px on a 1024-px one), at least MIN_FONT_PX, smaller only while the banner would take more
    than MAX_BANNER_SHARE of the height."""
    size = max(MIN_FONT_PX, width // 24)
    while True:
        font = caption_font(size)
        wrapped = _wrapped(lines, font, width - 8)
        if size <= MIN_FONT_PX or _text_height(wrapped, size) <= MAX_BANNER_SHARE * height:
            return size, wrapped
        size -= 1


def _text_height(lines: list[str], size: int) -> int:
    return len(lines) * (size + size // 4) + 10


def _with_banner(image: Image.Image, lines: list[str]) -> Image.Image:
    """`image` with `lines` in white on black beneath it, in DejaVu Sans (banner_layout: the size, the wrapping)."""
    width = image.width
    size, wrapped = banner_layout(lines, width, image.height)
    font = caption_font(size)
    text_height = _text_height(wrapped, size)
    # the picture keeps the radiograph's size (heatmap files stay within DISPLAY_SIDE): the radiograph shrinks
    # to leave the banner its room
    scale = max(1, image.height - text_height) / image.height
    shrunk = image.resize((max(1, round(image.width * scale)), max(1, image.height - text_height)),
                          Image.Resampling.BILINEAR)
    banner = Image.new("RGB", image.size, (0, 0, 0))
    banner.paste(shrunk, ((width - shrunk.width) // 2, 0))
    draw = ImageDraw.Draw(banner)
    for number, line in enumerate(wrapped):  # line by line, each at its own baseline: as the font draws it alone
        draw.text((4, shrunk.height + 4 + number * (size + size // 4)), line, fill=(255, 255, 255), font=font)
    return banner


def heatmap_legend(label: str) -> str:
    """What a heatmap shows and what it does not, in words, in the current language."""
    return _("Red to yellow: the parts of the image that, when hidden, lowered the model's probability of "
             "%(label)s the most. It shows where the model looked, not the outline of a lesion.") % {
        "label": in_words(label)}


def heatmap_name(rel_path: str) -> str:
    """A flat, unique file name for an image's heatmap: sub-folders joined with '__'."""
    return rel_path.replace("/", "__") + ".heatmap.png"


def label_heat(classifier, result, pixels: np.ndarray) -> np.ndarray:
    """The occlusion map of the label given: stage 2 for a disease, stage 1 for normal."""
    index = LABELS.index(result.label)
    if index == 0:
        return occlusion_map(classifier.stage1, pixels, 0)
    return occlusion_map(classifier.stage2, pixels, index - 1)


def heat_overlay(result, display: np.ndarray, heat: np.ndarray, caption: bool = True) -> Image.Image:
    """The heatmap of a classified image; with `caption`, the label, its probability, the referral, the notice
    and what the colours mean beneath it (heatmap files stand alone; the HTML worklist writes its caption as
    text)."""
    if not caption:
        return overlay(display, heat)
    return overlay(display, heat, caption_lines(result))


def caption_lines(result) -> list[str]:
    """The heatmap's caption, in the current language: the label and its probability (and the referral), the
    notice, what the colours mean."""
    index = LABELS.index(result.label)
    values = {"label": in_words(result.label), "p": decimal(result.probs[index], 2)}
    first = (_("%(label)s %(p)s - refer to a clinician") if result.refer else _("%(label)s %(p)s")) % values
    return [first, _("AI pre-diagnosis, not a diagnosis."),
            _("Colour: where hiding part of the image lowered this result most. It shows where the model looked, "
              "not the outline of a lesion.")]


def write_heatmap(out_dir: Path, result, display: np.ndarray, heat: np.ndarray) -> Path:
    """The heatmap PNG over the display image (at most DISPLAY_SIDE px a side), written atomically."""
    path = out_dir / heatmap_name(result.path)
    buffer = io.BytesIO()
    heat_overlay(result, display, heat).save(buffer, "PNG")
    write_atomic(path, buffer.getvalue())
    return path
