"""The app in a real browser: Debian's Chromium driven by Playwright, with a fake webcam.

The app runs as a user would start it (``python -m apps``) against ``vision.testing``; the webcam is
Chromium's fake capture device playing a generated clip of a book cover on a table. Each test saves a
screenshot of its tab under its temporary folder and checks that it is not blank.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vision.testing import FakeServer
from vision.testing.clips import hold, render, write_y4m

from .conftest import _SCRUB, ASSETS, TESSERACT, has_rapidocr

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]  # the first one starts the app

REQUIRED = os.environ.get("VISION_REQUIRE_BROWSER") == "1"  # CI: a missing browser is a failure, not a skip
CHROMIUM = os.environ.get("VISION_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
_MISSING = None
try:
    from playwright import sync_api
except ImportError:
    _MISSING = "Playwright is not installed (pip install playwright; it comes with the dev extra)"
try:
    import gradio  # noqa: F401
except ImportError:
    _MISSING = "the apps need the `apps` extra (pip install 'vision-toolkit[apps]')"
if _MISSING is None and not Path(CHROMIUM).is_file():
    _MISSING = (f"no Chromium at {CHROMIUM}: `apt-get install chromium` (./dev.sh test does it when it may), "
                "or point VISION_CHROMIUM at one")
if _MISSING is not None:
    if REQUIRED:
        raise RuntimeError(f"VISION_REQUIRE_BROWSER=1 but {_MISSING}")
    pytest.skip(_MISSING, allow_module_level=True)

expect = sync_api.expect
SECRET = "sk-browser-secret-0123456789"  # set in the app's environment; must never reach the page
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream",
               "--use-fake-device-for-media-stream"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_not_blank(path: Path) -> None:
    """A screenshot that shows a page: many colours, real contrast."""
    with Image.open(path) as img:
        grey = np.asarray(img.convert("L"), dtype=np.float32)
        colours = len(img.convert("RGB").getcolors(maxcolors=1 << 20) or [])
    assert grey.std() > 20 and colours > 200, f"{path} looks blank (std {grey.std():.1f}, {colours} colours)"


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture(scope="module")
def app_url(fake_api: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m apps`` on a free port, against the fake server, with a key it must never show."""
    home = tmp_path_factory.mktemp("app")
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith("GRADIO_")}
    env.update(OPENAI_BASE_URL=fake_api.openai_base_url, OPENAI_API_KEY=SECRET,
               REPLICATE_BASE_URL=fake_api.replicate_base_url, REPLICATE_POLL_INTERVAL="0.05",
               VISION_DATA_DIR=str(home / "data"), VISION_CONFIG=str(home / "no-config.toml"),
               VISION_OUTPUT_DIR=str(home / "outputs"), OMP_THREAD_LIMIT="1", GRADIO_ANALYTICS_ENABLED="False")
    port = free_port()
    log_path = home / "app.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "apps", "--port", str(port)], cwd=home, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app did not start in 120 s:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()  # errors were handled, not crashes


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of the book cover lying on a table, as the fake webcam plays it (it loops)."""
    with Image.open(ASSETS / "book_cover.png") as cover:
        scene = np.asarray(cover.convert("RGB"))
    frames = [f for f, _ in render([scene], [hold(0, 2.0)], size=(640, 480), fps=10, noise=0.0, fill=0.95)]
    path = tmp_path_factory.mktemp("camera") / "book_cover.y4m"
    write_y4m(path, frames, fps=10)
    return path


@pytest.fixture(scope="module")
def browser(camera_clip: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM,
                                      args=[*CHROME_ARGS, f"--use-file-for-fake-video-capture={camera_clip}"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, app_url: str) -> Iterator[Any]:
    context = browser.new_context(permissions=["camera"], viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    try:
        tab = context.new_page()
        tab.goto(app_url)
        expect(tab.get_by_role("tab", name="Point & Ask")).to_be_visible()
        yield tab
        assert SECRET not in tab.content()
        with urllib.request.urlopen(app_url + "config", timeout=10) as response:
            assert SECRET not in response.read().decode()
    finally:
        context.close()


def screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert_not_blank(path)
    return path


def pick_model(page: Any, elem_id: str, name: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(name)
    box.press("Enter")
    expect(box).to_have_value(name)


def upload_photo(page: Any, path: Path) -> None:
    page.locator("#pa-camera").locator("..").page.get_by_role("tab", name="Photo").click()
    page.locator("#pa-photo input[type=file]").set_input_files(str(path))
    expect(page.locator("#pa-still img")).to_be_visible()


needs_ocr = pytest.mark.skipif(not (TESSERACT or has_rapidocr()), reason="no OCR engine installed")


@needs_ocr
def test_point_and_ask_reads_the_camera_the_right_way_round(page: Any, tmp_path: Path) -> None:
    camera = page.locator("#pa-camera")
    camera.get_by_text("Click to Access Webcam").click()
    camera.get_by_role("button", name="capture photo").click()  # starts streaming frames to the server
    expect(page.locator("#pa-status")).to_contain_text("Sharpest still frame", timeout=30_000)
    expect(page.locator("#pa-still img")).to_be_visible()
    expect(page.locator("#pa-cost")).to_contain_text("free")
    page.locator("#pa-question textarea").fill("What is the title?")
    page.locator("#pa-ask").click()
    # the local engine reads the printed title: only possible if the frame reached the server unmirrored
    expect(page.locator("#pa-chat")).to_contain_text('Likely title (the most prominent text): "THE QUIET ORCHARD"',
                                                     timeout=60_000)
    expect(page.locator("#pa-cost")).to_contain_text("Measured: free with local")
    expect(page.locator("#pa-status")).to_contain_text("Pinned")
    screenshot(page, tmp_path, "point-and-ask")


def test_point_and_ask_streams_a_models_answer(page: Any, fake_api: FakeServer, tmp_path: Path) -> None:
    answer = "The title is The Quiet Orchard, a novel by Mara Ellison, lying on a wooden table."
    fake_api.script(answer, chunk_delay=0.2, model="gpt-4.1-mini")
    upload_photo(page, ASSETS / "book_photo.jpg")
    pick_model(page, "pa-model", "mini")
    page.locator("#pa-question textarea").fill("What is the title?")
    expect(page.locator("#pa-cost")).to_contain_text("Before asking: at most $")
    page.locator("#pa-ask").click()
    chat = page.locator("#pa-chat")
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while answer not in (text := chat.inner_text()) and time.monotonic() < deadline:
        if "The title is" in text:
            seen.add(text)
        time.sleep(0.05)
    assert answer in chat.inner_text()
    assert any(answer not in t for t in seen), "the answer appeared all at once: not streamed"
    expect(page.locator("#pa-cost")).to_contain_text("Measured: $")
    request = fake_api.requests_for("openai")[-1]
    assert request.json["stream"] is True and request.model == "gpt-4.1-mini" and len(request.images) == 1
    screenshot(page, tmp_path, "point-and-ask-model")


def test_an_error_is_a_message_in_the_page(page: Any, tmp_path: Path) -> None:
    upload_photo(page, ASSETS / "book_cover.png")
    pick_model(page, "pa-model", "openai/gpt-4.1-mini-error-500")
    page.locator("#pa-question textarea").fill("What is this?")
    page.locator("#pa-ask").click()
    toast = page.locator(".toast-body").first
    expect(toast).to_contain_text("HTTP 500", timeout=30_000)
    assert "Traceback" not in toast.inner_text()
    expect(page.locator("#pa-question textarea")).to_have_value("What is this?")  # kept to try again
    expect(page.locator("#pa-status")).to_contain_text("uploaded photo")  # not pinned: nothing was said
    screenshot(page, tmp_path, "error")


@needs_ocr
def test_label_and_receipt_read_correct_explain(page: Any, tmp_path: Path) -> None:
    page.get_by_role("tab", name="Label & Receipt").click()
    page.locator("#lr-upload input[type=file]").set_input_files(str(ASSETS / "receipt.png"))
    expect(page.locator("#lr-overlay img").first).to_be_visible(timeout=60_000)
    fields = page.locator("#lr-fields")
    expect(fields).to_contain_text("GREENLEAF MARKET")
    expect(page.locator("#lr-checks")).to_contain_text("passed")
    expect(page.locator("#lr-summary")).to_contain_text("none failed")
    merchant = fields.locator('[data-testid="cell-0-1"]')
    expect(merchant).to_contain_text("GREENLEAF MARKET")
    merchant.dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type("GREENLEAF GROCERS")
    page.keyboard.press("Enter")
    expect(merchant).to_contain_text("GREENLEAF GROCERS")
    page.locator("#lr-confirm").click()
    expect(page.locator("#lr-json")).to_be_enabled()
    pick_model(page, "lr-model", "local")
    page.locator("#lr-explain").click()
    explanation = page.locator("#lr-explanation")
    expect(explanation).to_contain_text("A receipt from GREENLEAF GROCERS", timeout=30_000)  # the corrected field
    expect(explanation).to_contain_text("total GBP 15.96")
    with page.expect_download() as download:
        page.locator("#lr-csv").click()
    saved = tmp_path / "receipt.csv"
    download.value.save_as(saved)
    assert "field,merchant,GREENLEAF GROCERS" in saved.read_text()
    screenshot(page, tmp_path, "label-and-receipt")


def test_imagine_write_edit_generate(page: Any, fake_api: FakeServer, tmp_path: Path) -> None:
    page.get_by_role("tab", name="Imagine").click()
    page.locator("#im-caption textarea").fill("a lighthouse at dawn")
    page.locator("#im-write").click()
    prompt = page.locator("#im-prompt textarea")
    expect(prompt).to_have_value("a lighthouse at dawn")
    expect(page.locator("#im-estimate")).to_contain_text("Estimated cost: $0.00300")
    prompt.fill("a lighthouse at dawn, a red door")
    page.locator("#im-generate").click()  # the prompt changed: the estimate is shown again first
    expect(page.locator(".toast-body").first).to_contain_text("check the new estimate")
    page.locator("#im-generate").click()
    expect(page.locator("#im-gallery img").first).to_be_visible(timeout=30_000)
    expect(page.locator("#im-estimate")).to_contain_text("Made 1 picture(s)")
    sent = [r for r in fake_api.requests_for("replicate") if r.method == "POST" and r.json and "input" in r.json]
    assert sent[-1].json["input"]["prompt"] == "a lighthouse at dawn, a red door"
    page.locator("#im-gallery img").first.click()
    expect(page.locator("#im-video-estimate")).to_contain_text("video with replicate/kwaivgi/kling-v2.1")
    expect(page.locator("#im-video-prompt textarea")).not_to_have_value("")
    expect(page.locator("#im-provenance")).to_contain_text("a lighthouse at dawn, a red door")
    page.locator("#im-video").click()
    expect(page.locator("#im-video-out video")).to_be_visible(timeout=30_000)
    expect(page.locator("#im-video-estimate")).to_contain_text("Video made by replicate/kwaivgi/kling-v2.1")
    screenshot(page, tmp_path, "imagine")
