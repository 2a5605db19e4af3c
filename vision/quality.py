"""Frame quality: sharpness, exposure and a perceptual hash, all on a reduced grey frame.

Measured on a frame reduced to at most ``ANALYSIS_SIDE`` pixels: the figures are comparable across
resolutions and cheap enough to run on every camera frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .frame import Frame

ANALYSIS_SIDE = 320


def analysis_gray(frame: Frame | np.ndarray, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """The frame as a grey image whose long side is at most ``side`` pixels."""
    rgb = frame.pixels if isinstance(frame, Frame) else frame
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    h, w = gray.shape
    scale = side / max(h, w)
    if scale < 1:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return gray


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: higher is sharper (below about 50 at 320 px usually looks blurred)."""
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


@dataclass(frozen=True)
class Exposure:
    mean: float  # 0..255
    dark_fraction: float  # share of pixels below 16
    blown_fraction: float  # share of pixels above 239

    @property
    def verdict(self) -> str:
        if self.mean < 40 or self.dark_fraction > 0.6:
            return "too dark"
        if self.mean > 225 or self.blown_fraction > 0.4:
            return "blown out"
        return "ok"


def exposure(gray: np.ndarray) -> Exposure:
    n = gray.size or 1
    return Exposure(
        mean=float(gray.mean()) if gray.size else 0.0,
        dark_fraction=float(np.count_nonzero(gray < 16)) / n,
        blown_fraction=float(np.count_nonzero(gray > 239)) / n,
    )


def dhash(gray: np.ndarray, size: int = 8) -> int:
    """Difference hash: ``size * size`` bits comparing neighbouring pixels of a tiny grey image."""
    small = cv2.resize(gray, (size + 1, size), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@dataclass(frozen=True)
class Quality:
    sharpness: float
    exposure: Exposure
    dhash: int

    @property
    def blurry(self) -> bool:
        return self.sharpness < 50.0


def measure(frame: Frame) -> Quality:
    """Sharpness, exposure and hash of one frame."""
    gray = analysis_gray(frame)
    return Quality(sharpness(gray), exposure(gray), dhash(gray))
