"""The library pieces the apps stand on: the still-frame keeper, the model and generator pickers, the
edited prompt, page overlays and the fake webcam's clip format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from vision.bridge import imagine, plan_imagine, read_provenance
from vision.bridge.generators import known_generators
from vision.config import reload_config
from vision.council import default_members
from vision.frame import Frame
from vision.live import GateSettings, StillKeeper
from vision.ocr import OcrResult, OcrWord, page_overlays
from vision.providers.registry import is_connected, model_choices
from vision.testing import FakeServer
from vision.testing.clips import hold, pan, render, text_card, write_y4m

from .conftest import ASSETS
from .pdf_support import image_pdf

# -- StillKeeper ------------------------------------------------------------------------------------------


def feed(keeper: StillKeeper, frames: list[np.ndarray], fps: float = 5.0, t0: float = 0.0) -> list[bool]:
    return [keeper.update(Frame.from_array(f, bgr=True, timestamp=t0 + i / fps)) for i, f in enumerate(frames)]


def scenes() -> list[np.ndarray]:
    return [text_card(["FIRST", "SCENE"]), text_card(["SECOND"], bg=(40, 40, 90), fg=(250, 250, 250))]


def test_keeper_keeps_the_still_frame_of_each_new_scene() -> None:
    keeper = StillKeeper()
    assert keeper.status == "starting" and keeper.frame_for_asking() is None
    frames = [f for f, _ in render(scenes(), [hold(0, 1.0), pan(0, 1, 0.6), hold(1, 1.0)], size=(320, 240), fps=5)]
    changes = feed(keeper, frames)
    assert sum(changes) == 2 and keeper.kept is not None and keeper.kept.scene == 2
    assert keeper.kept.info.still and keeper.status == "same scene"
    assert keeper.frame_for_asking() is keeper.kept


def test_keeper_swaps_in_a_sharper_frame_of_the_same_scene() -> None:
    sharp = text_card(["FOCUS", "PULL"])
    soft = np.ascontiguousarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(1.5)))
    keeper = StillKeeper(GateSettings(focus_wait=0.0))
    assert feed(keeper, [soft, soft]) == [False, True]  # the soft still frame is kept first ...
    assert keeper.kept is not None
    first = keeper.kept.info.sharpness
    assert feed(keeper, [sharp], t0=0.4) == [True]  # ... then the sharp frame of the same scene replaces it
    assert keeper.kept.scene == 1 and keeper.kept.info.sharpness > 1.1 * first
    assert feed(keeper, [sharp], t0=0.6) == [False]  # no sharper: nothing changes


def test_keeper_without_a_still_frame_offers_the_sharpest_recent_one() -> None:
    keeper = StillKeeper()
    frames = [f for f, _ in render(scenes(), [pan(0, 1, 0.8, ease=False)], size=(320, 240), fps=5)]
    assert not any(feed(keeper, frames))
    kept = keeper.frame_for_asking()
    assert kept is not None and kept.still is False and keeper.kept is None
    keeper.reset()
    assert keeper.frame_for_asking() is None and keeper.status == "starting"


# -- pickers -------------------------------------------------------------------------------------------------


def test_model_choices_follow_what_is_connected(monkeypatch: pytest.MonkeyPatch) -> None:
    assert model_choices() == ["local"]
    assert default_members() == []  # local alone cannot sit a council
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")  # told where, but no key: not ready
    reload_config()
    assert model_choices() == ["local"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("GEMINI_API_KEY", "g-test")
    monkeypatch.setenv("VISION_MODEL", "openai/gpt-4.1-mini")
    config = reload_config()
    assert model_choices() == ["local", "openai/gpt-4.1-mini", "nano", "gpt", "flash"]  # mini is the default
    assert is_connected(config.providers["gemini"]) and not is_connected(config.providers["ollama"])
    assert default_members() == ["openai/gpt-4.1-mini", "nano", "gpt"]
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1")  # a server on this machine: no key
    reload_config()
    assert "llava" in model_choices()


def test_one_connected_model_makes_a_council_with_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    reload_config()
    assert model_choices() == ["local", "sonnet"] and default_members() == ["sonnet", "local"]


def test_known_generators_are_the_default_then_the_table() -> None:
    images, videos = known_generators("image"), known_generators("video")
    assert images[0] == "replicate/black-forest-labs/flux-schnell" and "openai/gpt-image-1-mini" in images
    assert not any("dall-e" in g or g.endswith("gpt-image-1") or "*" in g for g in images)
    assert videos[0] == "replicate/kwaivgi/kling-v2.1" and not any("sora" in v for v in videos)  # deprecated


# -- the edited prompt ------------------------------------------------------------------------------------


def test_an_edited_prompt_is_sent_and_recorded(api_env: FakeServer, tmp_path: Path) -> None:
    plan = plan_imagine("a lighthouse at dawn", style="watercolour", prompt="  a lighthouse, pencil sketch  ",
                        video=True, video_prompt="slow pan over the lighthouse")
    assert plan.image_prompt is not None and plan.image_prompt.prompt == "a lighthouse, pencil sketch"
    assert plan.image_prompt.edited and plan.image_prompt.writer == "template"
    assert plan.video_prompt is not None and plan.video_prompt.prompt == "slow pan over the lighthouse"
    assert plan.jobs[0].inputs["prompt"] == "a lighthouse, pencil sketch"
    same = plan_imagine("a lighthouse at dawn", prompt="a lighthouse at dawn")
    assert same.image_prompt is not None and not same.image_prompt.edited
    generations = imagine("a lighthouse at dawn", prompt="a lighthouse, pencil sketch", out_dir=tmp_path)
    record = read_provenance(generations[0].files[0])
    assert record["prompt"] == "a lighthouse, pencil sketch" and record["writer"]["edited"] is True
    assert record["source"]["caption"] == "a lighthouse at dawn"
    with pytest.raises(ValueError, match="prompt is empty"):
        plan_imagine("a kite", prompt="   ")
    with pytest.raises(ValueError, match="accepts at most"):
        plan_imagine("a kite", prompt="x" * 5000)


# -- overlays and clips ------------------------------------------------------------------------------------


def test_page_overlays_for_an_image_and_each_pdf_page(tmp_path: Path) -> None:
    word = OcrWord("HELLO", (10, 10, 60, 30), 0.3, 0, page=1)
    frame = Frame.from_array(np.full((100, 200, 3), 255, np.uint8))
    [one] = page_overlays(frame, OcrResult((word,), "test", "eng", (200, 100)))
    assert one.size == (200, 100) and one.getpixel((5, 5)) == (255, 255, 255)
    pdf = tmp_path / "two.pdf"
    with Image.open(ASSETS / "receipt.png") as receipt:
        pdf.write_bytes(image_pdf([receipt.convert("RGB")] * 3, dpi=100))
    pages = page_overlays(pdf, OcrResult((word,), "test", "eng"), dpi=72, max_pages=2)
    assert len(pages) == 2 and pages[0].size == pages[1].size
    assert pages[1].getpixel((20, 20)) != pages[0].getpixel((20, 20))  # shaded on page 2 only: OCR doubted it


def test_y4m_clips_for_chromiums_fake_webcam(tmp_path: Path) -> None:
    frames = [np.full((4, 6, 3), v, np.uint8) for v in (0, 128, 255)]
    path = tmp_path / "clip.y4m"
    assert write_y4m(path, frames, fps=5, bgr=False) == 3
    data = path.read_bytes()
    header, _, body = data.partition(b"\n")
    assert header == b"YUV4MPEG2 W6 H4 F5:1 Ip A1:1 C420jpeg"
    assert body.count(b"FRAME\n") == 3 and len(data) == len(header) + 1 + 3 * (6 + 6 * 4 * 3 // 2)
    with pytest.raises(ValueError, match="even width and height"):
        write_y4m(tmp_path / "odd.y4m", [np.zeros((5, 6, 3), np.uint8)])
    with pytest.raises(ValueError, match="no frames"):
        write_y4m(tmp_path / "empty.y4m", [])
    assert not (tmp_path / "empty.y4m").exists()
