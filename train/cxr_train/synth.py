"""Synthetic frontal chest radiographs in the COVID-19 Radiography Database layout, for tests and the demo.

Each image is drawn from a small anatomical model (body outline, lungs, mediastinum and heart, spine,
ribs, clavicles, diaphragm) with patient variation (size, position, rotation, exposure, noise, text
markers), plus a class finding of random severity:

- lung_opacity: focal or lobar consolidation, in one lung more often than both;
- viral_pneumonia: a diffuse bilateral interstitial (reticular) pattern, strongest around the hila;
- covid19: bilateral, peripheral, lower-zone ground-glass opacities.

Severities overlap and normal images carry confounders (breast shadows, small nodular shadows), so the
task is learnable but a good model does not reach 100%. The same seed gives the same bytes; image i of a
class does not depend on how many images are asked for.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from cxr_edge.labels import DATABASE_FOLDERS, LABELS


@dataclass(frozen=True)
class SynthImage:
    pixels: np.ndarray  # (size, size) uint8
    lung_mask: np.ndarray  # (size, size) bool
    severity: float  # 0 for normal
    finding_box: tuple[int, int, int, int] | None  # x0, y0, x1, y1 where the finding is strongest


def _smooth_noise(rng: np.random.Generator, cells: int, size: int) -> np.ndarray:
    """Gaussian noise on a coarse grid, bicubic-upsampled: a smooth random field of unit-ish scale."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC))


def _soft(x: np.ndarray, width: float) -> np.ndarray:
    """A soft step: 0 well below 0, 1 well above, over about `width`."""
    return 1.0 / (1.0 + np.exp(-np.clip(x / width, -30, 30)))


def _segment_distance(u, v, p0, p1):
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(u - (x0 + t * dx), v - (y0 + t * dy))


class _Patient:
    """Anatomy in patient coordinates (u right-of-image, v down), after size/position/rotation jitter."""

    def __init__(self, rng: np.random.Generator, size: int):
        self.rng, self.size = rng, size
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        x, y = x / (size - 1) * 2 - 1, y / (size - 1) * 2 - 1
        scale = rng.uniform(0.86, 1.06)
        dx, dy = rng.uniform(-0.06, 0.06), rng.uniform(-0.05, 0.07)
        theta = np.deg2rad(rng.uniform(-4, 4))
        c, s = np.cos(theta), np.sin(theta)
        self.u = ((x - dx) * c + (y - dy) * s) / scale
        self.v = (-(x - dx) * s + (y - dy) * c) / scale
        self.lungs = [self._lung(side) for side in (-1, 1)]  # image left (patient's right), image right

    def _lung(self, side: int) -> dict:
        rng, u, v = self.rng, self.u, self.v
        cx = side * rng.uniform(0.34, 0.40)
        cy = rng.uniform(-0.08, 0.0)
        a = rng.uniform(0.27, 0.32) * (0.94 if side > 0 else 1.0)
        b = rng.uniform(0.58, 0.66)
        taper = 0.72 + 0.28 * np.clip((v - cy) / b + 0.3, 0, 1)  # narrower apex
        r = np.sqrt(((u - cx) / (a * taper)) ** 2 + ((v - cy) / b) ** 2)
        dome = cy + b * 0.86 - 0.13 * (1 - np.clip(((u - cx) / a) ** 2, 0, 1)) - (0.04 if side < 0 else 0)
        mask = _soft(1 - r, 0.04) * _soft(dome - v, 0.015)
        return {"side": side, "cx": cx, "cy": cy, "a": a, "b": b, "r": r, "mask": mask}

    def draw_normal(self) -> np.ndarray:
        rng, u, v, size = self.rng, self.u, self.v, self.size
        body = _soft(1 - ((np.abs(u) / rng.uniform(0.82, 0.92)) ** 4 + (np.abs(v - 0.25) / 1.25) ** 4), 0.05)
        img = 0.04 + 0.50 * body
        heart = _soft(1 - np.hypot((u - 0.12) / rng.uniform(0.24, 0.31), (v - 0.26) / rng.uniform(0.17, 0.22)), 0.05)
        mediastinum = _soft(0.11 - np.abs(u - 0.02), 0.02) * _soft(0.85 - v, 0.05)
        lung = np.clip(self.lungs[0]["mask"] + self.lungs[1]["mask"], 0, 1) * (1 - heart) * (1 - mediastinum)
        self.lung = lung
        texture = _smooth_noise(rng, 6, size)
        img -= 0.30 * lung * (1 + 0.08 * texture)
        img += 0.14 * mediastinum + 0.10 * heart * (1 - mediastinum)
        img += self._vessels(lung)
        img += 0.05 * _soft(0.06 - np.abs(u), 0.01) * (0.7 + 0.3 * np.cos(v * 42)) * body
        img += self._ribs(lung, body)
        img += self._clavicles()
        img += self._confounders(lung)
        return img

    def _vessels(self, lung):
        # Zero crossings of a smooth field form a branching network; denser near the hila.
        field = _smooth_noise(self.rng, 18, self.size)
        lines = np.exp(-(field / 0.12) ** 2)
        hilum = sum(np.exp(-((self.u - 0.15 * s) ** 2 + (self.v + 0.02) ** 2) / 0.12) for s in (-1, 1))
        return 0.035 * lines * lung * (0.4 + hilum)

    def _ribs(self, lung, body):
        rng, u, v = self.rng, self.u, self.v
        ribs = np.zeros_like(u)
        start, gap = rng.uniform(-0.68, -0.60), rng.uniform(0.12, 0.14)
        for k in range(10):
            curve = start + k * gap + 0.22 * u ** 2 - 0.04 * np.abs(u)
            ribs += np.exp(-((v - curve) / 0.022) ** 2)
        return 0.085 * ribs * _soft(0.8 - np.abs(u), 0.05) * body * (0.4 + 0.6 * lung)

    def _clavicles(self):
        out = np.zeros_like(self.u)
        for side in (-1, 1):
            lift = self.rng.uniform(-0.04, 0.04)
            d = _segment_distance(self.u, self.v, (side * 0.08, -0.60 + lift), (side * 0.62, -0.74 + lift))
            out += 0.15 * np.exp(-(d / 0.028) ** 2)
        return out

    def _confounders(self, lung):
        """Shadows healthy people have too: breast shadows in the lower zones, small nodular spots."""
        rng, u, v = self.rng, self.u, self.v
        out = np.zeros_like(u)
        if rng.random() < 0.35:
            for side in (-1, 1):
                out += rng.uniform(0.02, 0.06) * _soft(1 - np.hypot((u - side * 0.38) / 0.3, (v - 0.5) / 0.22), 0.1)
        for _ in range(rng.integers(0, 3)):
            lg = self.lungs[rng.integers(2)]
            cx, cy = lg["cx"] + lg["a"] * rng.uniform(-0.6, 0.6), lg["cy"] + lg["b"] * rng.uniform(-0.5, 0.6)
            out += rng.uniform(0.03, 0.08) * np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / rng.uniform(0.0004, 0.0015))
        return out * np.maximum(lung, 0.3)

    # Findings: each returns an opacity map (added brightness), masked by the lungs.
    def lung_opacity(self, severity):
        rng, u, v = self.rng, self.u, self.v
        out = np.zeros_like(u)
        sides = [rng.integers(2)] if rng.random() < 0.75 else [0, 1]
        for idx in sides:
            lg = self.lungs[idx]
            for _ in range(rng.integers(1, 3)):
                cx = lg["cx"] + lg["a"] * rng.uniform(-0.5, 0.5)
                cy = lg["cy"] + lg["b"] * rng.uniform(-0.3, 0.65)
                radius = (0.07 + 0.16 * severity) * rng.uniform(0.8, 1.2)
                edge = 1 + 0.35 * _smooth_noise(rng, 5, self.size)  # irregular, lobar-looking borders
                out += _soft(edge - np.hypot(u - cx, (v - cy) * 0.8) / radius, 0.25)
        return (0.10 + 0.28 * severity) * np.clip(out, 0, 1) * self.lung

    def viral_pneumonia(self, severity):
        rng, u, v = self.rng, self.u, self.v
        field = _smooth_noise(rng, 26, self.size)
        reticular = np.exp(-(field / 0.16) ** 2) + 0.5 * _soft(_smooth_noise(rng, 10, self.size), 0.5)
        perihilar = sum(np.exp(-((u - 0.18 * s) ** 2 + (v - 0.05) ** 2) / 0.18) for s in (-1, 1))
        return (0.05 + 0.16 * severity) * reticular * (0.45 + perihilar) * self.lung

    def covid19(self, severity):
        rng, v = self.rng, self.v
        out = np.zeros_like(v)
        both = rng.random() < 0.85
        for i, lg in enumerate(self.lungs):
            if not both and i != rng.integers(2):
                continue
            peripheral = _soft(lg["r"] - rng.uniform(0.45, 0.65), 0.08)
            lower = _soft(v - lg["cy"] - rng.uniform(-0.1, 0.2) * lg["b"], 0.08)
            patchy = _soft(_smooth_noise(rng, 7, self.size) + 0.6, 0.35)
            out += peripheral * lower * patchy * lg["mask"]
        return (0.07 + 0.20 * severity) * np.clip(out, 0, 1) * self.lung


_FINDINGS = {"lung_opacity": _Patient.lung_opacity, "viral_pneumonia": _Patient.viral_pneumonia,
             "covid19": _Patient.covid19}


def make_image(label: str, size: int, rng: np.random.Generator) -> SynthImage:
    """Draw one synthetic radiograph of class `label`."""
    patient = _Patient(rng, size)
    img = patient.draw_normal()
    severity, box = 0.0, None
    if label != "normal":
        severity = float(rng.beta(1.4, 1.6))
        finding = _FINDINGS[label](patient, severity)
        img += finding
        box = _box(finding)
    pixels = _expose(img, rng, size)
    return SynthImage(pixels, patient.lung > 0.5, severity, box)


def _box(finding: np.ndarray):
    hot = finding >= 0.5 * finding.max() if finding.max() > 0 else np.zeros(finding.shape, bool)
    if not hot.any():
        return None
    ys, xs = np.nonzero(hot)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _expose(img: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Exposure, detector blur and noise, then an occasional text marker."""
    img = np.clip((img - 0.5) * rng.uniform(0.85, 1.2) + 0.5 + rng.uniform(-0.07, 0.07), 0, 1)
    img = img ** rng.uniform(0.8, 1.25)
    pil = Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8), mode="L")
    pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.1) * size / 299))
    arr = np.asarray(pil).astype(np.float32) + rng.normal(0, rng.uniform(1.5, 7.0), (size, size))
    pil = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    if rng.random() < 0.3:
        draw = ImageDraw.Draw(pil)
        text = str(rng.choice(["L", "R", "PA", "PORTABLE"]))
        font = ImageFont.load_default(size=max(8, size // 16))
        corner = (int(size * rng.uniform(0.03, 0.12)), int(size * rng.uniform(0.03, 0.1)))
        if rng.random() < 0.5:
            corner = (size - corner[0] - size // 6, corner[1])
        draw.text(corner, text, fill=int(rng.uniform(200, 255)), font=font)
    return np.asarray(pil, dtype=np.uint8)


def image_rng(seed: int, label: str, index: int) -> np.random.Generator:
    """The generator for image `index` of `label`: independent of how many images are made."""
    return np.random.default_rng([seed, LABELS.index(label), index])


def write_dataset(out: os.PathLike | str, per_class: int, size: int = 299, seed: int = 0,
                  labels: tuple[str, ...] = LABELS) -> Path:
    """Write `per_class` images of each label in the Database layout; returns the output folder.

    <out>/<Class>/images/<Class>-<n>.png, <out>/<Class>/masks/<Class>-<n>.png (lung masks, not training
    data), and <out>/synth.csv with each image's label, severity and finding box (for explainability tests).
    """
    if per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {per_class}")
    if size < 32:
        raise ValueError(f"--size must be at least 32 pixels, got {size}")
    out = Path(out)
    rows = []
    for label in labels:
        folder = DATABASE_FOLDERS[label]
        (out / folder / "images").mkdir(parents=True, exist_ok=True)
        (out / folder / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(1, per_class + 1):
            image = make_image(label, size, image_rng(seed, label, i))
            name = f"{folder}-{i}.png"
            Image.fromarray(image.pixels, mode="L").save(out / folder / "images" / name)
            Image.fromarray(image.lung_mask.astype(np.uint8) * 255, mode="L").save(out / folder / "masks" / name)
            box = "" if image.finding_box is None else " ".join(map(str, image.finding_box))
            rows.append((f"{folder}/images/{name}", label, f"{image.severity:.4f}", box))
    with open(out / "synth.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "severity", "finding_box"])
        writer.writerows(rows)
    return out
