"""Generated scenes and clips with known content, shared by the camera, live and watch tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vision.testing.clips import dark, hold, pan, write_clip


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # type: ignore[return-value]


def book() -> np.ndarray:
    img = Image.new("RGB", (600, 900), (20, 35, 80))
    d = ImageDraw.Draw(img)
    d.ellipse((380, 80, 540, 240), fill=(245, 220, 150))
    d.text((60, 380), "NIGHT", font=_font(90), fill="white")
    d.text((60, 490), "RIVER", font=_font(90), fill="white")
    d.rectangle((0, 760, 600, 900), fill=(30, 90, 60))
    return np.asarray(img)


def chart() -> np.ndarray:
    img = Image.new("RGB", (900, 600), (245, 245, 245))
    d = ImageDraw.Draw(img)
    for i, (h, c) in enumerate([(300, (200, 40, 40)), (450, (40, 120, 200)), (200, (60, 170, 70)),
                                (380, (230, 160, 30))]):
        d.rectangle((100 + i * 190, 520 - h, 230 + i * 190, 520), fill=c)
    d.line((80, 520, 860, 520), fill="black", width=4)
    return np.asarray(img)


def label(lines: int = 16, size: int = 26) -> np.ndarray:
    img = Image.new("RGB", (600, 900), "white")
    d = ImageDraw.Draw(img)
    d.text((30, 20), "Facts", font=_font(56), fill="black")
    for i in range(lines):
        y = 110 + i * 46
        d.line((30, y, 570, y), fill="black", width=2)
        d.text((30, y + 8), f"Item number {i} contains {i * 7} mg", font=_font(size), fill="black")
    return np.asarray(img)


def poster() -> np.ndarray:
    img = Image.new("RGB", (900, 600), (90, 160, 90))
    d = ImageDraw.Draw(img)
    d.ellipse((300, 100, 700, 500), fill=(20, 20, 20))
    d.rectangle((40, 40, 200, 200), fill=(240, 240, 60))
    return np.asarray(img)


SCENES = [book, chart, label, poster]

# A: still; pan with motion blur to B; cut to C, which comes into focus; the lights go out and come back
# on C (the same scene: no new question); out again, and a cut to D.
STORY = [hold(0, 1.0), pan(0, 1, 0.6), hold(1, 1.0), hold(2, 1.0, focus_pull=0.4), dark(2, 1.0), hold(2, 1.0),
         dark(2, 0.6), hold(3, 1.0)]
STORY_SCENES = [0, 1, 2, 3]  # the scenes a gate should ask about, in order


def story_clip(path: Path, *, fps: float = 15.0, size: tuple[int, int] = (640, 360)) -> list[str]:
    """Write the story clip; returns every frame's label (hold:N, focus:N, pan:A-B, dark:N)."""
    return write_clip(path, [make() for make in SCENES], STORY, size=size, fps=fps, noise=2.0)


def still_image(path: Path, scene: int = 0, size: tuple[int, int] = (640, 360)) -> Path:
    """One still picture of a scene, as a file."""
    img = Image.fromarray(SCENES[scene]()).convert("RGB")
    img.thumbnail(size)
    img.save(path, quality=92)
    return path
