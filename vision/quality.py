"""Frame quality: sharpness, exposure, motion, a perceptual hash, and the best recent frame.

Everything is measured on a grey frame reduced to at most ``ANALYSIS_SIDE`` pixels: the figures are
comparable across resolutions and cheap enough to run on every camera frame (about 1 ms for 720p
on one core). :class:`QualityTracker` follows a stream: motion against the previous frame,
stillness, and :meth:`QualityTracker.best_frame`, the sharpest still frame of the last N seconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
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
    # the first bit is the most significant; packbits pads the last byte with zeros on the right
    return int.from_bytes(np.packbits(bits).tobytes(), "big") >> (-bits.size % 8)


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


# -- streams: motion, stillness, scene changes, the best recent frame --------------------------------

MOTION_SIDE = 64  # motion is compared on thumbnails this wide: sensor noise and JPEG artefacts average out
MOTION_THRESHOLD = 2.5  # mean absolute grey-level difference between thumbnails below which a frame is still
SCENE_THRESHOLD = 12  # dhash bits (of 64) that must differ for a different scene
MIN_SHARPNESS = 15.0  # below this at ANALYSIS_SIDE the frame is blank or badly out of focus


def thumbnail(gray: np.ndarray, side: int = MOTION_SIDE) -> np.ndarray:
    """A tiny grey image (long side ``side``) to compare consecutive frames on."""
    h, w = gray.shape
    scale = side / max(h, w)
    if scale >= 1:
        return gray
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def motion(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean absolute grey-level difference (0-255) between two thumbnails; 0 is perfectly still.

    Thumbnails of different sizes (the stream changed resolution) count as full motion.
    """
    if previous.shape != current.shape:
        return 255.0
    return float(cv2.absdiff(previous, current).mean())


def scene_distance(a: int, b: int) -> int:
    """How different two scenes look: the Hamming distance of their dhashes (0-64)."""
    return hamming(a, b)


@dataclass(frozen=True)
class FrameInfo:
    """What :class:`QualityTracker` measured on one frame of a stream."""

    index: int
    timestamp: float
    sharpness: float
    exposure: Exposure
    dhash: int
    motion: float | None  # against the previous frame; None for the first frame
    still: bool  # motion at most the tracker's threshold

    @property
    def usable(self) -> bool:
        """Bright enough to show something. A frame the verdict calls blown out still counts: a white
        page filling the frame looks like that, and a truly burnt-out frame fails on sharpness."""
        return self.exposure.verdict != "too dark"

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index, "timestamp": self.timestamp, "sharpness": round(self.sharpness, 1),
            "exposure": self.exposure.verdict, "brightness": round(self.exposure.mean, 1),
            "motion": None if self.motion is None else round(self.motion, 2), "still": self.still,
            "dhash": f"{self.dhash:016x}",
        }


@dataclass(frozen=True)
class Scored:
    """A frame with its measurements."""

    frame: Frame
    info: FrameInfo


class _SuffixMax:
    """The sharpest frame of any recent time window, keeping only the frames that can still win.

    A frame is kept only while no later frame is at least as sharp (a monotone deque), so a still
    scene keeps a handful of frames rather than every frame of the window.
    """

    def __init__(self, max_kept: int) -> None:
        self.items: deque[Scored] = deque()
        self.max_kept = max_kept

    def push(self, item: Scored) -> None:
        while self.items and self.items[-1].info.sharpness <= item.info.sharpness:
            self.items.pop()
        self.items.append(item)
        while len(self.items) > self.max_kept:
            self.items.popleft()

    def expire(self, before: float) -> None:
        while self.items and self.items[0].info.timestamp < before:
            self.items.popleft()

    def best(self, since: float) -> Scored | None:
        for item in self.items:  # sharpest first among those in the window
            if item.info.timestamp >= since:
                return item
        return None

    def clear(self) -> None:
        self.items.clear()


class QualityTracker:
    """Measures each frame of a stream and remembers the sharpest recent ones::

        tracker = QualityTracker()
        for frame in camera:
            info = tracker.update(frame)       # sharpness, exposure, dhash, motion, still
        best = tracker.best_frame(2.0)         # the sharpest still frame of the last 2 seconds

    A frame is *still* when it barely differs from the previous frame; the frame before the first
    still one counts as still too (the two are the same picture). Frames too dark to show anything are
    measured but never chosen as the best.
    """

    def __init__(self, *, motion_threshold: float = MOTION_THRESHOLD, history: float = 10.0,
                 max_kept: int = 64, side: int = ANALYSIS_SIDE) -> None:
        if history <= 0:
            raise ValueError("history must be positive (seconds)")
        self.motion_threshold = motion_threshold
        self.history = history
        self.side = side
        self._still = _SuffixMax(max_kept)
        self._any = _SuffixMax(max_kept)
        self._prev: Scored | None = None
        self._prev_thumb: np.ndarray | None = None
        self._prev_in_still = False
        self.count = 0
        self.last: FrameInfo | None = None

    def update(self, frame: Frame, *, index: int | None = None, still: bool | None = None) -> FrameInfo:
        """Measure ``frame``; ``still=True`` declares it still whatever the motion (a photo in a folder)."""
        gray = analysis_gray(frame, self.side)
        thumb = thumbnail(gray)
        moved = None if self._prev_thumb is None else motion(self._prev_thumb, thumb)
        is_still = (moved is not None and moved <= self.motion_threshold) if still is None else still
        idx = index if index is not None else getattr(frame, "index", self.count)
        info = FrameInfo(idx, frame.timestamp, sharpness(gray), exposure(gray), dhash(gray), moved, is_still)
        item = Scored(frame, info)
        self.count += 1
        horizon = info.timestamp - self.history
        self._still.expire(horizon)
        self._any.expire(horizon)
        if is_still and still is None and self._prev is not None and not self._prev_in_still \
                and self._prev.info.usable:
            self._still.push(self._prev)  # the first frame of a still run: same picture as this one
        if info.usable:
            self._any.push(item)
            if is_still:
                self._still.push(item)
        self._prev, self._prev_thumb, self._prev_in_still = item, thumb, is_still and info.usable
        self.last = info
        return info

    def best_frame(self, window: float, *, still_only: bool = True) -> Scored | None:
        """The sharpest usable (not too dark) frame of the last ``window`` seconds, counted back
        from the newest frame (only still ones unless ``still_only=False``), or ``None``."""
        if window < 0:
            raise ValueError("window must not be negative")
        if self.last is None:
            return None
        return (self._still if still_only else self._any).best(self.last.timestamp - window)

    def reset(self) -> None:
        """Forget everything (the stream restarted or jumped)."""
        self._still.clear()
        self._any.clear()
        self._prev = self._prev_thumb = None
        self._prev_in_still = False
        self.last = None


def best_frame(frames: Iterable[Frame], window: float | None = None, *, still_only: bool = True) -> Scored | None:
    """The sharpest still, usable frame among ``frames`` (only the last ``window`` seconds when
    given), falling back to the sharpest usable one when no frame was still."""
    tracker = QualityTracker(history=window if window else 1e9, max_kept=1_000_000)
    for frame in frames:
        tracker.update(frame)
    span = window if window is not None else 1e9
    best = tracker.best_frame(span, still_only=still_only)
    if best is None and still_only:
        best = tracker.best_frame(span, still_only=False)
    return best
