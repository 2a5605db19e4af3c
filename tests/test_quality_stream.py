"""Frame quality over a stream: motion and stillness, scene distance, and the best recent frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision.frame import Frame
from vision.quality import (
    MOTION_THRESHOLD,
    SCENE_THRESHOLD,
    QualityTracker,
    analysis_gray,
    best_frame,
    dhash,
    hamming,
    measure,
    motion,
    scene_distance,
    thumbnail,
)

from .camera_support import SCENES


def scene(i: int, *, blur: float = 0.0, brightness: float = 1.0, shift: int = 0, t: float = 0.0,
          seed: int = 0) -> Frame:
    img = cv2.resize(SCENES[i](), (480, 360), interpolation=cv2.INTER_AREA).astype(np.float32)
    if shift:
        img = np.roll(img, shift, axis=1)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    rng = np.random.default_rng(seed)
    img = np.clip(img * brightness + rng.normal(0, 1.5, img.shape), 0, 255).astype(np.uint8)
    return Frame(img, source="test", timestamp=t)


def _dhash_reference(gray: np.ndarray, size: int = 8) -> int:
    """The original bit-by-bit implementation: the packed one must give the same values."""
    small = cv2.resize(gray, (size + 1, size), interpolation=cv2.INTER_AREA)
    value = 0
    for bit in (small[:, 1:] > small[:, :-1]).flatten():
        value = (value << 1) | int(bit)
    return value


@pytest.mark.parametrize("size", [8, 5, 16])
def test_dhash_values_are_unchanged(size: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(5):
        gray = rng.integers(0, 255, (90, 120), dtype=np.uint8)
        assert dhash(gray, size) == _dhash_reference(gray, size)


def test_motion_is_zero_for_the_same_picture_and_large_for_a_pan() -> None:
    a = thumbnail(analysis_gray(scene(0, seed=1)))
    b = thumbnail(analysis_gray(scene(0, seed=2)))  # same scene, other sensor noise
    panned = thumbnail(analysis_gray(scene(0, shift=40, seed=3)))
    assert motion(a, b) < MOTION_THRESHOLD / 4
    assert motion(a, panned) > 3 * MOTION_THRESHOLD
    assert motion(a, thumbnail(analysis_gray(scene(0)), side=32)) == 255.0  # the stream changed size


def test_scene_distance_separates_scenes_but_not_small_moves() -> None:
    hashes = [measure(scene(i)).dhash for i in range(len(SCENES))]
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            assert scene_distance(hashes[i], hashes[j]) > SCENE_THRESHOLD
        assert scene_distance(hashes[i], measure(scene(i, shift=4, seed=9)).dhash) <= SCENE_THRESHOLD
    assert hamming(5, 6) == 2


def test_tracker_stillness_and_the_best_frame_of_a_window() -> None:
    tracker = QualityTracker()
    # moving (a pan), then still on scene 1: blurred at first, then sharp, then a little less sharp
    timeline = [scene(0, t=0.0), scene(0, shift=60, t=0.1), scene(1, blur=2.0, t=0.2, seed=1),
                scene(1, blur=1.0, t=0.3, seed=2), scene(1, t=0.4, seed=3), scene(1, blur=0.6, t=0.5, seed=4)]
    infos = [tracker.update(f) for f in timeline]
    assert [i.still for i in infos] == [False, False, False, True, True, True]
    assert infos[0].motion is None and infos[1].motion > MOTION_THRESHOLD
    best = tracker.best_frame(1.0)
    assert best is not None and best.frame is timeline[4]
    assert best.info.sharpness == max(i.sharpness for i in infos[2:])
    # the window counts back from the newest frame: 0.05 s holds only the last one
    assert tracker.best_frame(0.05).frame is timeline[5]  # type: ignore[union-attr]
    # the first frame of a still run counts as still (it is the same picture as the next one)
    tracker2 = QualityTracker()
    for f in timeline[:4]:
        tracker2.update(f)
    assert tracker2.best_frame(1.0).frame is timeline[3]  # type: ignore[union-attr]
    assert tracker2._still.items[0].frame is timeline[3]  # the blurred first still frame can no longer win


def test_dark_frames_are_never_the_best_and_moving_ones_only_when_asked() -> None:
    tracker = QualityTracker()
    tracker.update(scene(2, brightness=0.05, t=0.0))
    info = tracker.update(scene(2, brightness=0.05, t=0.1, seed=1))
    assert info.still and not info.usable and info.exposure.verdict == "too dark"
    assert tracker.best_frame(1.0) is None
    moving = QualityTracker()
    moving.update(scene(0, t=0.0))
    moving.update(scene(0, shift=80, t=0.1))
    assert moving.best_frame(1.0) is None
    assert moving.best_frame(1.0, still_only=False) is not None


def test_tracker_keeps_only_the_frames_that_can_still_win() -> None:
    tracker = QualityTracker(history=60.0)
    frames = [scene(3, t=i / 30, seed=i) for i in range(120)]
    for f in frames:
        tracker.update(f)
    assert len(tracker._still.items) < 30  # a still scene keeps a handful, not four seconds of frames
    best = tracker.best_frame(10.0)
    assert best is not None
    assert best.info.sharpness == max(measure(f).sharpness for f in frames[:])


def test_best_frame_helper() -> None:
    frames = [scene(1, blur=b, t=i * 0.1, seed=i) for i, b in enumerate([3.0, 0.0, 0.0, 1.5])]
    assert best_frame(frames).frame is frames[1] or best_frame(frames).frame is frames[2]  # type: ignore[union-attr]
    only = best_frame([scene(0, t=0)])  # one frame: never still, still the best there is
    assert only is not None and only.info.motion is None
    assert best_frame([]) is None
    with pytest.raises(ValueError):
        QualityTracker().best_frame(-1)
