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


def _with_banner(image: Image.Image, lines: list[str]) -> Image.Image:
    """`image` with `lines` in white on black beneath it. The font is the largest that fits the longest line in
    the width, at most a twentieth of it (12 px on a 256-px-wide picture, 51 px on a 1024-px one)."""
    width = image.width
    size = max(8, width // 20)
    font = ImageFont.load_default(size=size)
    longest = max(lines, key=lambda line: font.getlength(line))
    while size > 8 and font.getlength(longest) > width - 8:
        size -= 1
        font = ImageFont.load_default(size=size)
    text = "\n".join(lines)
    box = ImageDraw.Draw(image).multiline_textbbox((0, 0), text, font=font, spacing=size // 4)
    text_height = box[3] + 10
    # the picture keeps the radiograph's size (heatmap files stay within DISPLAY_SIDE): the radiograph shrinks
    # to leave the banner its room
    scale = max(1, image.height - text_height) / image.height
    shrunk = image.resize((max(1, round(image.width * scale)), max(1, image.height - text_height)),
                          Image.Resampling.BILINEAR)
    banner = Image.new("RGB", image.size, (0, 0, 0))
    banner.paste(shrunk, ((width - shrunk.width) // 2, 0))
    ImageDraw.Draw(banner).multiline_text((4, shrunk.height + 4), text, fill=(255, 255, 255), font=font,
                                          spacing=size // 4)
    return banner


def heatmap_legend(label: str) -> str:
    """What a heatmap shows and what it does not, in words."""
    return (f"Red to yellow: the parts of the image that, when hidden, lowered the model's probability of "
            f"{in_words(label)} the most. It shows where the model looked, not the outline of a lesion.")


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
    index = LABELS.index(result.label)
    first = f"{in_words(result.label)} {result.probs[index]:.2f}" + (" - refer to a clinician" if result.refer else "")
    return overlay(display, heat, [first, "AI pre-diagnosis, not a diagnosis",
                                   "Colour: where hiding the image lowered this result most;",
                                   "where the model looked, not a lesion outline"])


def write_heatmap(out_dir: Path, result, display: np.ndarray, heat: np.ndarray) -> Path:
    """The heatmap PNG over the display image (at most DISPLAY_SIDE px a side), written atomically."""
    path = out_dir / heatmap_name(result.path)
    buffer = io.BytesIO()
    heat_overlay(result, display, heat).save(buffer, "PNG")
    write_atomic(path, buffer.getvalue())
    return path
