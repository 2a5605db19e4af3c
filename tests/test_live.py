"""Live point-and-ask: the gate (when to ask, which frame), the session against vision.testing and the
local engine, and regions of interest for small print."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from vision.camera import Camera, open_camera
from vision.config import reload_config
from vision.errors import BudgetExceededError, CameraError, MissingApiKeyError
from vision.frame import Frame
from vision.history import History
from vision.live import AskGate, GateSettings, LiveSession, watch
from vision.providers.registry import get_model
from vision.quality import measure
from vision.roi import find_text_regions, needs_small_print, plan_roi
from vision.testing import FakeServer
from vision.testing.clips import hold, pan, table_texture, write_clip

from .camera_support import SCENES, STORY_SCENES, label, still_image, story_clip
from .conftest import ASSETS, TESSERACT, has_rapidocr, text_image


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("clips") / "story.mp4"
    return path, story_clip(path)


@pytest.fixture(scope="module")
def story_sharpness(story: tuple[Path, list[str]]) -> list[float]:
    """Sharpness of every decoded frame of the story clip (the ground truth for 'the sharpest')."""
    with Camera(story[0]) as cam:
        return [measure(f).sharpness for f in cam]


def holds(labels: list[str], scene: int) -> list[int]:
    return [i for i, lab in enumerate(labels) if lab == f"hold:{scene}"]


def run_gate(path: Path, settings: GateSettings | None = None) -> list[Any]:
    gate = AskGate(settings)
    triggers = []
    with Camera(path) as cam:
        for frame in cam:
            trigger = gate.update(frame)
            if trigger is not None:
                triggers.append(trigger)
                gate.done()
    last = gate.flush()
    return triggers + ([last] if last else [])


# -- the gate -----------------------------------------------------------------------------------------


def test_gate_asks_once_per_still_scene_with_a_sharp_frame(story: tuple[Path, list[str]],
                                                            story_sharpness: list[float]) -> None:
    path, labels = story
    triggers = run_gate(path)
    # A, B (after a pan), C (after a cut, once in focus), not C again after the lights come back, then D
    assert [int(labels[t.info.index].split(":")[1]) for t in triggers] == STORY_SCENES
    for t in triggers:
        chosen = labels[t.info.index]
        assert chosen.startswith("hold:"), f"frame {t.info.index} is {chosen}, not a still sharp frame"
        scene_frames = holds(labels, int(chosen.split(":")[1]))
        assert t.info.sharpness >= 0.9 * max(story_sharpness[i] for i in scene_frames)
    assert [t.scene for t in triggers] == [1, 2, 3, 4]


def test_gate_asks_soon_after_the_camera_stops(story: tuple[Path, list[str]]) -> None:
    path, labels = story
    triggers = run_gate(path)
    fps = 15.0
    for t in triggers:
        scene = int(labels[t.info.index].split(":")[1])
        start = next(i for i, lab in enumerate(labels) if lab in (f"hold:{scene}", f"focus:{scene}"))
        waited = t.decided_at - (triggers[0].frame.timestamp - triggers[0].info.index / fps + start / fps)
        limit = 0.5 + 0.2 if labels[start].startswith("focus") else 0.2  # settle (+ the focus wait)
        assert waited <= limit, f"scene {scene} decided {waited:.2f} s after it became still"


def test_gate_never_asks_in_the_dark_or_on_a_blank_wall() -> None:
    gate = AskGate()
    rng = np.random.default_rng(0)
    dark = (cv2.resize(SCENES[0](), (320, 240)) * 0.04).astype(np.uint8)
    blank = np.full((240, 320, 3), 180, np.uint8)
    for i in range(30):
        img = dark if i < 15 else blank
        noisy = np.clip(img + rng.normal(0, 0.5, img.shape), 0, 255).astype(np.uint8)
        assert gate.update(Frame(noisy, timestamp=i / 15)) is None
    assert gate.flush() is None
    assert gate.status in {"blurred or blank", "too dark"}


def photo(i: int, t: float) -> Frame:
    rng = np.random.default_rng(i)
    return Frame(cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (160, 120),
                            interpolation=cv2.INTER_NEAREST), timestamp=t)


def test_rate_cap_and_the_newest_good_frame_wins() -> None:
    gate = AskGate(GateSettings(rate=1.0))
    sent = []
    for k in range(10):  # a new photo every 0.25 s, each its own scene
        trigger = gate.update(photo(k, k * 0.25), still=True)
        if trigger is not None:
            sent.append(trigger)
            gate.done()
    # at most one per second: photos 0, 4 and 8; those in between were replaced by newer ones
    assert [t.info.timestamp for t in sent] == [0.0, 1.0, 2.0]
    assert gate.replaced == 6
    last = gate.flush()  # the end: the newest waiting one goes whatever the rate cap
    assert last is not None and last.info.timestamp == 2.25


def test_one_request_in_flight() -> None:
    gate = AskGate(GateSettings(rate=100))
    first = gate.update(photo(0, 0.0), still=True)
    assert first is not None and gate.busy
    assert gate.update(photo(1, 1.0), still=True) is None  # decided, but waits for the one in flight
    assert gate.update(photo(2, 2.0), still=True) is None  # ...and is replaced by a newer scene
    assert gate.pending is not None and gate.pending.info.timestamp == 2.0
    gate.done()
    nxt = gate.update(photo(2, 2.1), still=True)  # same scene again: nothing new, the waiting one goes
    assert nxt is not None and nxt.info.timestamp == 2.0


def test_gate_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        GateSettings(rate=0)
    with pytest.raises(ValueError):
        GateSettings(settle=-1)
    with pytest.raises(ValueError):
        GateSettings(scene_threshold=65)


# -- the session --------------------------------------------------------------------------------------


def test_live_session_against_the_fake_server(api_env: FakeServer, story: tuple[Path, list[str]]) -> None:
    path, labels = story
    with Camera(path) as cam:
        session = LiveSession(cam, "What is this?", model="openai/gpt-4.1-mini")
        answers = list(session.answers())
    assert len(answers) == 4 and session.summary.asks == 4
    assert all(labels[a.index].startswith("hold:") for a in answers)
    requests = api_env.requests_for("openai")
    assert len(requests) == 4
    assert all(len(r.images) == 1 and r.images[0].format == "JPEG" for r in requests)
    assert all("What is this?" in r.text for r in requests)
    row = answers[-1].to_dict()
    assert {"time", "frame", "sharpness", "answer", "model", "usage"} <= set(row)
    assert row["model"] == "openai/gpt-4.1-mini" and row["usage"]["cost_usd"] > 0
    assert row["total_cost_usd"] == pytest.approx(sum(a.answer.usage.cost_usd for a in answers))  # type: ignore[union-attr]
    assert row["time"] == pytest.approx(answers[-1].index / 15, abs=1e-6)
    entries = History(reload_config().history_path).list(limit=10)
    assert len(entries) == 4 and all(len(e.images) == 1 for e in entries)


def test_live_session_with_the_local_engine(tmp_path: Path) -> None:
    with Camera(ASSETS / "scenes.mp4") as cam:
        answers = list(LiveSession(cam, "What is this?", model="local", history=False).answers())
    assert len(answers) == 3
    assert all(a.answer is not None and a.answer.model == "local" for a in answers)
    assert all(a.total_usage.cost_usd == 0 for a in answers)
    if TESSERACT or has_rapidocr():
        assert "THE QUIET ORCHARD" in answers[0].text
        assert "GREENLEAF MARKET" in answers[2].text


def test_a_failed_ask_is_reported_and_watching_goes_on(api_env: FakeServer, story: tuple[Path, list[str]]) -> None:
    api_env.script(status=400, error="this image is not allowed", times=1)
    with Camera(story[0]) as cam:
        session = LiveSession(cam, "What is this?", model="openai/gpt-4.1-mini", history=False)
        answers = list(session.answers())
    assert len(answers) == 4
    assert answers[0].answer is None and "not allowed" in (answers[0].error or "")
    assert all(a.answer is not None for a in answers[1:])
    assert session.summary.failures == 1


def test_configuration_errors_stop_the_session(api_env: FakeServer, story: tuple[Path, list[str]],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_BUDGET_USD", "0.0000001")
    reload_config()
    with Camera(story[0]) as cam:
        session = LiveSession(cam, "What is this?", model="openai/gpt-4.1-mini", history=False)
        with pytest.raises(BudgetExceededError):
            list(session.answers())
    assert api_env.requests_for("openai") == []  # nothing was sent, nothing paid for


def test_a_missing_key_fails_before_watching(story: tuple[Path, list[str]]) -> None:
    with Camera(story[0]) as cam, pytest.raises(MissingApiKeyError):
        LiveSession(cam, "What is this?", model="openai/gpt-4.1-mini")


@pytest.mark.slow
def test_live_source_keeps_one_request_in_flight(api_env: FakeServer, tmp_path: Path) -> None:
    # three quick scenes played in real time (1.7 s), and a model that takes 2 s to answer the first:
    # scenes 2 (at about 0.7 s) and 3 (1.3 s) are decided while it is in flight, and the newer one wins
    clip = tmp_path / "quick.mp4"
    labels = write_clip(clip, [make() for make in SCENES[:3]], [hold(0, 0.4), pan(0, 1, 0.2), hold(1, 0.4),
                                                               pan(1, 2, 0.2), hold(2, 0.5)], size=(320, 180), fps=15)
    api_env.script(delay=2.0, times=1)
    cam = Camera(clip, realtime=True)
    session = LiveSession(cam, "What is this?", model="openai/gpt-4.1-mini", history=False)
    with cam:  # playback starts once the session is ready
        assert not session.wait
        in_flight, peak = [0], [0]
        lock = threading.Lock()
        send = session.model.send

        def counting_send(*args: Any, **kwargs: Any) -> Any:
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            try:
                return send(*args, **kwargs)
            finally:
                with lock:
                    in_flight[0] -= 1

        session.model.send = counting_send  # type: ignore[method-assign]
        answers = list(session.answers())
    assert peak[0] == 1
    assert [labels[a.index] for a in answers] == ["hold:0", "hold:2"]
    assert [a.scene for a in answers] == [1, 3]
    assert session.summary.replaced == 1
    assert len(api_env.requests_for("openai")) == 2


def test_duration_ends_the_session_on_the_source_clock(api_env: FakeServer, story: tuple[Path, list[str]]) -> None:
    with Camera(story[0]) as cam:
        session = LiveSession(cam, "What is this?", model="openai/gpt-4.1-mini", history=False, duration=1.0)
        answers = list(session.answers())
    assert len(answers) == 1 and session.summary.frames == 16  # frames 0..15: one second at 15 fps


def test_a_camera_that_fails_still_delivers_the_answer_in_flight(api_env: FakeServer) -> None:
    from vision.testing import wait_until
    from vision.testing.mjpeg import MjpegServer

    api_env.script(delay=1.0, times=1)
    server = MjpegServer([cv2.resize(SCENES[0](), (320, 240))], fps=20).start()

    def pull_the_plug() -> None:  # the camera goes away while the first request is in flight
        wait_until(lambda: len(api_env.requests_for("openai")) >= 1, timeout=30)
        server.stop()

    unplug = threading.Thread(target=pull_the_plug)
    cam = Camera(server.url, timeout=1, give_up_after=0.2, backoff=(0.05, 0.1))
    session = LiveSession(cam, "What is this?", model="openai/gpt-4.1-mini", history=False)
    got = []
    try:
        with cam, pytest.raises(CameraError, match="could not reconnect"):
            unplug.start()
            for answer in session.answers():
                got.append(answer)
    finally:
        unplug.join(timeout=30)
        server.stop()
    assert len(got) == 1 and got[0].answer is not None


def test_max_asks_folder_and_watch_helper(api_env: FakeServer, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        still_image(folder / f"p{i}.jpg", scene=i)
    answers = list(watch(folder, "What is this?", model="openai/gpt-4.1-mini", history=False, max_asks=2))
    assert [a.index for a in answers] == [0, 1]
    everything = list(watch(folder, "What is this?", model="openai/gpt-4.1-mini", history=False))
    assert [a.index for a in everything] == [0, 1, 2, 3]  # each photo is its own scene, one per second
    one = list(watch(folder / "p0.jpg", "What is this?", model="openai/gpt-4.1-mini", history=False))
    assert len(one) == 1


# -- regions of interest --------------------------------------------------------------------------------


def small_label_frame(size: tuple[int, int] = (1600, 900)) -> tuple[Frame, tuple[int, int, int, int]]:
    """A wide shot: a label far away in the corner of a table (its text far too small once shrunk)."""
    w, h = size
    canvas = table_texture(w, h)
    lab = cv2.resize(label(), (200, 300), interpolation=cv2.INTER_AREA)
    x0, y0 = 1250, 450
    canvas[y0:y0 + 300, x0:x0 + 200] = lab
    return Frame(np.ascontiguousarray(canvas), source="wide.jpg"), (x0, y0, x0 + 200, y0 + 300)


def test_needs_small_print() -> None:
    assert needs_small_print("What does the label say?")
    assert needs_small_print("What is the title of this book?")
    assert needs_small_print("How much sugar is in it? Read the ingredients")
    assert not needs_small_print("What is this?")
    assert not needs_small_print("Is this animal dangerous?")


def test_text_regions_are_found_with_their_letter_size() -> None:
    lines = ["Total Fat 8g 10%", "Sodium 160mg 7%", "Protein 3g", "Calcium 260mg 20%"]
    frame = Frame.from_pil(text_image(lines, size=24, width=600))
    regions = find_text_regions(frame)
    assert len(regions) >= 3
    heights = sorted(r.height for r in regions)
    assert 10 <= heights[len(heights) // 2] <= 24
    assert all(r.box[0] >= 20 and r.box[2] <= 600 for r in regions)
    assert find_text_regions(Frame(np.full((200, 300, 3), 200, np.uint8))) == []


def test_roi_crops_small_print_for_a_model_that_shrinks_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    reload_config()
    model = get_model("openai/gpt-4.1-mini")
    frame, text_box = small_label_frame()
    plan = plan_roi(frame, "What does the label say?", model)
    assert plan.mode == "both" and plan.crop is not None
    x0, y0, x1, y1 = plan.crop
    assert x0 <= text_box[0] + 30 and y0 <= text_box[1] + 110 and x1 >= text_box[2] - 60 and y1 >= text_box[3] - 40
    assert (x1 - x0) * (y1 - y0) < 0.1 * frame.width * frame.height
    assert plan.crop_text_px >= 1.5 * plan.text_px  # type: ignore[operator]
    parts = plan.parts(frame, "auto")
    assert [p.detail for p in parts] == ["auto", "high"] and parts[1].frame.size == (x1 - x0, y1 - y0)
    assert plan_roi(frame, "What is this?", model).mode == "none"
    assert plan_roi(frame, "What does the label say?", model, mode="off").mode == "none"
    assert plan_roi(frame, "What does the label say?", model, mode="crop").mode == "crop"
    assert plan_roi(frame, "What does the label say?", get_model("local")).mode == "none"
    with pytest.raises(ValueError):
        plan_roi(frame, "What does it say?", model, mode="zoom")  # type: ignore[arg-type]


def test_roi_end_to_end_sends_the_whole_frame_and_the_crop(api_env: FakeServer, tmp_path: Path) -> None:
    frame, _ = small_label_frame()
    frame.save(tmp_path / "wide.png")
    answers = list(watch(tmp_path / "wide.png", "What does the label say?", model="openai/gpt-4.1-mini",
                         history=False))
    assert len(answers) == 1 and answers[0].roi is not None and answers[0].roi.mode == "both"
    images = api_env.requests_for("openai")[-1].images
    assert len(images) == 2
    assert images[0].width <= 768 and images[1].width < 400  # the whole frame shrunk, the crop kept sharp
    assert answers[0].to_dict()["crop"] == list(answers[0].roi.crop)  # type: ignore[arg-type]


def test_roi_with_a_one_image_model_sends_only_the_crop(api_env: FakeServer, tmp_path: Path) -> None:
    frame, _ = small_label_frame()
    frame.save(tmp_path / "wide.png")
    answers = list(watch(tmp_path / "wide.png", "Read the label", model="replicate/yorickvp/llava-13b",
                         history=False))
    assert answers[0].roi is not None and answers[0].roi.mode == "crop"
    assert answers[0].answer is not None


def test_open_camera_is_reusable_for_sessions(story: tuple[Path, list[str]]) -> None:
    cam = open_camera(story[0])
    try:
        first = cam.read(timeout=5)
        assert first is not None and first.index == 0
    finally:
        cam.close()
    cam.close()  # twice is fine
