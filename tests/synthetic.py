"""Synthetic labelled images made in the tests: solid colours vs stripes, and a colour-driven score."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 64


def solid(color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (SIZE, SIZE), color)


def stripes(color: tuple[int, int, int], width: int) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for x in range(0, SIZE, 2 * width):
        draw.rectangle((x, 0, x + width - 1, SIZE - 1), fill=color)
    return image


def solid_vs_stripes(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """root/solid/*.png (random colours) and root/stripes/*.png (dark stripes on white, in widths that do
    not divide the 16-pixel patches, so an image's patches differ: the tiny random CLIP separates them)."""
    rng = random.Random(seed)
    for label in ("solid", "stripes"):
        (root / label).mkdir(parents=True, exist_ok=True)
    for i in range(per_class):
        solid((rng.randrange(256), rng.randrange(256), rng.randrange(256))).save(
            root / "solid" / f"{i:02d}.png"
        )
        dark = (rng.randrange(128), rng.randrange(128), rng.randrange(128))
        stripes(dark, rng.choice((3, 5, 6, 7))).save(root / "stripes" / f"{i:02d}.png")
    return root


def scored_images(root: Path, count: int = 30, seed: int = 1) -> Path:
    """root/NN.png coloured along a red-to-green ramp, and root/scores.csv: path,score in 0-10."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        v = (i + rng.random()) / count
        solid((int(255 * v), int(200 * (1 - v)), 60)).save(root / f"{i:02d}.png")
        rows.append((f"{i:02d}.png", round(10 * v, 3)))
    with (root / "scores.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "score"])
        writer.writerows(rows)
    return root / "scores.csv"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time (to prove nothing was touched)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }
