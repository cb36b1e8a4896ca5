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
from cxr_edge.labels import LABELS
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


def overlay(gray: np.ndarray, heat: np.ndarray, caption: str) -> Image.Image:
    """The radiograph in gray with the heat in red-to-yellow over it, and the caption (lines split by \\n)
    printed on it."""
    height, width = gray.shape
    peak = float(heat.max())
    norm = heat / peak if peak > 0 else heat
    up = np.asarray(Image.fromarray((norm * 255).astype(np.uint8), "L").resize((width, height), Image.Resampling.BILINEAR),
                    dtype=np.float32) / 255
    base = np.repeat(gray[:, :, np.newaxis].astype(np.float32), 3, axis=2)
    colour = np.stack([np.full_like(up, 255), 255 * up, np.zeros_like(up)], axis=2)  # red, yellow where hottest
    alpha = (0.55 * up)[:, :, np.newaxis]
    image = Image.fromarray(np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, min(width, height) // 24))
    box = draw.textbbox((4, 4), caption, font=font)
    draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
    draw.multiline_text((4, 4), caption, fill=(255, 255, 255), font=font)
    return image


def heatmap_name(rel_path: str) -> str:
    """A flat, unique file name for an image's heatmap: sub-folders joined with '__'."""
    return rel_path.replace("/", "__") + ".heatmap.png"


def label_heat(classifier, result, pixels: np.ndarray) -> np.ndarray:
    """The occlusion map of the label given: stage 2 for a disease, stage 1 for normal."""
    index = LABELS.index(result.label)
    if index == 0:
        return occlusion_map(classifier.stage1, pixels, 0)
    return occlusion_map(classifier.stage2, pixels, index - 1)


def heat_overlay(result, display: np.ndarray, heat: np.ndarray) -> Image.Image:
    index = LABELS.index(result.label)
    caption = f"{result.label} {result.probs[index]:.2f}" + ("  REFER" if result.refer else "") + "\n(not a diagnosis)"
    return overlay(display, heat, caption)


def write_heatmap(out_dir: Path, result, display: np.ndarray, heat: np.ndarray) -> Path:
    """The heatmap PNG over the display image (at most DISPLAY_SIDE px a side), written atomically."""
    path = out_dir / heatmap_name(result.path)
    buffer = io.BytesIO()
    heat_overlay(result, display, heat).save(buffer, "PNG")
    write_atomic(path, buffer.getvalue())
    return path
