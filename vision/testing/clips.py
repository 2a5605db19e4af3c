"""Synthetic camera clips with known content, for tests, benchmarks and the sample clip in assets/.

A clip is a timeline of shots over a row of scenes laid side by side on a table: ``hold`` (the
camera rests on a scene, with a little sensor noise and optionally a focus pull), ``pan`` (it slides
to another scene with motion blur proportional to its speed), a cut (two holds in a row) and
``dark`` (the lights go out over a scene). Every frame comes with a label saying what it shows, so
tests know which frames are still, sharp or dark.

>>> scenes = [text_card(["SCENE ONE"]), text_card(["SCENE TWO"], bg=(230, 240, 255))]
>>> timeline = [hold(0, 0.5), pan(0, 1, 0.3), hold(1, 0.5)]
>>> frames = list(render(scenes, timeline, size=(320, 240), fps=10))
>>> [label for _, label in frames][:6]
['hold:0', 'hold:0', 'hold:0', 'hold:0', 'hold:0', 'pan:0-1']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class Shot:
    kind: str  # "hold", "pan" or "dark"
    seconds: float
    scene: int
    to: int | None = None  # pan target
    focus_pull: float = 0.0  # hold: seconds at the start during which the picture comes into focus
    brightness: float = 1.0  # dark: how much light is left
    ease: bool = True  # pan: slow down into the next scene (False: stop dead, so stillness starts at one frame)


def hold(scene: int, seconds: float, *, focus_pull: float = 0.0) -> Shot:
    """The camera rests on ``scene``; with ``focus_pull`` it starts blurred and comes into focus."""
    return Shot("hold", seconds, scene, focus_pull=focus_pull)


def pan(scene: int, to: int, seconds: float, *, ease: bool = True) -> Shot:
    """The camera slides from ``scene`` to ``to`` with motion blur, eased in and out (or, with
    ``ease=False``, at a constant speed that stops dead on the next scene)."""
    return Shot("pan", seconds, scene, to=to, ease=ease)


def dark(scene: int, seconds: float, brightness: float = 0.06) -> Shot:
    """The lights go out over ``scene``."""
    return Shot("dark", seconds, scene, brightness=brightness)


def text_card(lines: Sequence[str], *, size: tuple[int, int] = (800, 600), bg: tuple[int, int, int] = (250, 248, 240),
              fg: tuple[int, int, int] = (20, 20, 20), font_size: int = 64) -> np.ndarray:
    """An RGB card with big lines of text and a frame, distinct enough to be its own scene."""
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    d.rectangle((12, 12, size[0] - 12, size[1] - 12), outline=fg, width=6)
    font = ImageFont.load_default(size=font_size)
    y = 60
    for line in lines:
        d.text((50, y), line, font=font, fill=fg)
        y += int(font_size * 1.4)
    return np.asarray(img)


def table_texture(width: int, height: int, seed: int = 3) -> np.ndarray:
    """A wooden-looking table top (RGB)."""
    rng = np.random.default_rng(seed)
    grain = rng.normal(0, 1, (height, width)).cumsum(axis=1)
    grain = (grain - grain.min()) / (np.ptp(grain) or 1)
    streaks = cv2.GaussianBlur(rng.normal(0, 1, (height, width)), (0, 0), sigmaX=25, sigmaY=1.5)
    streaks = (streaks - streaks.min()) / (np.ptp(streaks) or 1)
    g = 0.6 * grain + 0.4 * streaks
    return np.stack([125 + 55 * g, 84 + 38 * g, 48 + 22 * g], axis=2).astype(np.uint8)


def _fit_onto(canvas: np.ndarray, img: np.ndarray, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    h, w = img.shape[:2]
    scale = min(bw / w, bh / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    ox, oy = x0 + (bw - nw) // 2, y0 + (bh - nh) // 2
    canvas[oy:oy + nh, ox:ox + nw] = small


def _strip(scenes: Sequence[np.ndarray], size: tuple[int, int], fill: float) -> tuple[np.ndarray, list[int]]:
    """The scenes side by side on a table, one frame width apart; returns the strip and each scene's x."""
    w, h = size
    strip = table_texture(w * len(scenes), h)
    xs = []
    margin_x, margin_y = round(w * (1 - fill) / 2), round(h * (1 - fill) / 2)
    for i, scene in enumerate(scenes):
        _fit_onto(strip, scene, (i * w + margin_x, margin_y, (i + 1) * w - margin_x, h - margin_y))
        xs.append(i * w)
    return strip, xs


def _progress(t: float, ease: bool) -> float:
    return float(0.5 - 0.5 * np.cos(np.pi * t)) if ease else t


def render(scenes: Sequence[np.ndarray], timeline: Sequence[Shot], *, size: tuple[int, int] = (640, 360),
           fps: float = 30.0, fill: float = 0.9, noise: float = 2.0, seed: int = 0,
           blur: float = 0.5) -> Iterator[tuple[np.ndarray, str]]:
    """Frames (BGR, as cv2 writes them) and their labels: ``hold:N``, ``focus:N``, ``pan:A-B``, ``dark:N``.

    ``fill``: the share of the frame a scene fills; ``noise``: sensor noise (grey levels); ``blur``:
    the shutter as a share of the frame interval (motion blur length = speed x blur).
    """
    w = size[0]
    strip, xs = _strip(scenes, size, fill)
    strip_bgr = cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(seed)

    def view(x: float) -> np.ndarray:
        xi = round(min(max(x, 0), strip.shape[1] - w))
        return strip_bgr[:, xi:xi + w]

    def noisy(img: np.ndarray) -> np.ndarray:
        if noise <= 0:
            return img.copy()
        return np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)

    for shot in timeline:
        n = max(1, round(shot.seconds * fps))
        for i in range(n):
            if shot.kind == "hold":
                img = view(xs[shot.scene])
                label = f"hold:{shot.scene}"
                pull = round(shot.focus_pull * fps)
                if i < pull:
                    sigma = 4.0 * (1 - i / pull) + 0.3
                    img = cv2.GaussianBlur(img, (0, 0), sigma)
                    label = f"focus:{shot.scene}"
                yield noisy(img), label
            elif shot.kind == "dark":
                img = (view(xs[shot.scene]).astype(np.float32) * shot.brightness).astype(np.uint8)
                yield noisy(img), f"dark:{shot.scene}"
            elif shot.kind == "pan":
                assert shot.to is not None
                a, b = xs[shot.scene], xs[shot.to]
                t0, t1 = i / n, (i + 1) / n
                x = a + (b - a) * _progress((t0 + t1) / 2, shot.ease)
                speed = abs(b - a) * (_progress(t1, shot.ease) - _progress(t0, shot.ease))  # pixels per frame
                img = view(x)
                k = int(speed * blur)
                if k >= 2:
                    kernel = np.full((1, k), 1.0 / k, np.float32)
                    img = cv2.filter2D(img, -1, kernel)
                yield noisy(img), f"pan:{shot.scene}-{shot.to}"
            else:
                raise ValueError(f"unknown shot kind {shot.kind!r}")


def write_clip(path: str | Path, scenes: Sequence[np.ndarray], timeline: Sequence[Shot], *,
               size: tuple[int, int] = (640, 360), fps: float = 30.0, **kwargs: float) -> list[str]:
    """Render the timeline to an MP4 (mp4v) file; returns the label of every frame."""
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}: this OpenCV build has no mp4v encoder")
    labels = []
    try:
        for frame, label in render(scenes, timeline, size=size, fps=fps, **kwargs):  # type: ignore[arg-type]
            writer.write(frame)
            labels.append(label)
    finally:
        writer.release()
    return labels


def write_y4m(path: str | Path, frames: Iterable[np.ndarray], *, fps: int = 10, bgr: bool = True) -> int:
    """Write frames (BGR as :func:`render` yields them, or RGB with ``bgr=False``) as a YUV4MPEG2 file:
    what Chromium's ``--use-file-for-fake-video-capture`` plays as a webcam. Width and height must be even.
    Returns the number of frames written."""
    path = Path(path)
    n = 0
    size: tuple[int, int] | None = None
    with path.open("wb") as fh:
        for frame in frames:
            h, w = frame.shape[:2]
            if size is None:
                if w % 2 or h % 2:
                    raise ValueError(f"a .y4m clip needs an even width and height, got {w}x{h}")
                size = (w, h)
                fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            elif (w, h) != size:
                raise ValueError(f"frame {n} is {w}x{h}, the clip is {size[0]}x{size[1]}")
            code = cv2.COLOR_BGR2YUV_I420 if bgr else cv2.COLOR_RGB2YUV_I420
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(np.ascontiguousarray(frame), code).tobytes())
            n += 1
    if n == 0:
        path.unlink()
        raise ValueError("no frames to write")
    return n


__all__ = ["Shot", "dark", "hold", "pan", "render", "table_texture", "text_card", "write_clip", "write_y4m"]
