"""The Gradio apps' handlers, called directly (the browser tests drive the real page).

The handlers are thin: these tests check that they wire the library correctly (the picture that is
asked about, follow-ups, costs before and after, corrections reaching the explanation, the edited
prompt reaching the generator, errors becoming page messages without tracebacks or keys).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vision.testing import FakeServer
from vision.testing.clips import text_card

from .conftest import ASSETS, TESSERACT, has_rapidocr
from .pdf_support import image_pdf

gr = pytest.importorskip("gradio", reason="the apps need the `apps` extra (pip install 'vision-toolkit[apps]')")

from apps import common, imagine, label_receipt, launch, point_and_ask  # noqa: E402

needs_ocr = pytest.mark.skipif(not (TESSERACT or has_rapidocr()), reason="no OCR engine installed")


def skipped(value: Any) -> bool:
    return isinstance(value, dict) and value == gr.skip()


def drain(gen: Iterator[Any]) -> tuple[list[Any], BaseException | None]:
    """Every value a generator handler yields, and the error it ended with (if any)."""
    out: list[Any] = []
    try:
        for item in gen:
            out.append(item)
    except gr.Error as exc:
        return out, exc
    return out, None


def card(lines: list[str], bg: tuple[int, int, int] = (250, 248, 240)) -> np.ndarray:
    """A 640x480 RGB frame showing printed text, like a webcam pointed at a page."""
    return np.asarray(Image.fromarray(text_card(lines, bg=bg)).resize((640, 480)))


def stream_frames(state: point_and_ask.PointState, image: np.ndarray, n: int = 4, t0: float = 0.0) -> list[Any]:
    """Feed ``n`` webcam frames 0.2 s apart (the page sends one every STREAM_EVERY seconds)."""
    outs = []
    for i in range(n):
        frame = np.clip(image.astype(int) + (i % 2), 0, 255).astype(np.uint8)  # a little sensor noise
        from vision.frame import Frame

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Frame, "from_array", _stamped(t0 + i * point_and_ask.STREAM_EVERY))
            outs.append(point_and_ask.on_camera_frame(frame, "", "local", point_and_ask.NO_PRESET, state))
    return outs


def _stamped(ts: float) -> Any:
    from vision.frame import Frame

    original = Frame.__dict__["from_array"].__func__

    def from_array(cls: Any = Frame, array: Any = None, **kwargs: Any) -> Frame:
        kwargs["timestamp"] = ts
        return original(Frame, array, **kwargs)

    return classmethod(from_array).__get__(None, Frame)


# -- common ---------------------------------------------------------------------------------------------


def test_errors_become_escaped_page_messages_without_keys() -> None:
    from vision.errors import MissingApiKeyError, ProviderStatusError

    @common.shows_errors
    def boom(exc: Exception) -> None:
        raise exc

    with pytest.raises(gr.Error) as e:
        boom(MissingApiKeyError("openai", "OPENAI_API_KEY"))
    assert "set OPENAI_API_KEY in the environment the app is started from" in e.value.message
    with pytest.raises(gr.Error) as e:
        boom(ProviderStatusError("server said <b>no</b> to sk-abcdefghijklmnop", provider="openai", model="m",
                                 status_code=500))
    assert "&lt;b&gt;no&lt;/b&gt;" in e.value.message and "sk-abcdefghijklmnop" not in e.value.message
    with pytest.raises(gr.Error) as e:
        boom(KeyError("internal detail"))
    assert e.value.message.startswith("Something went wrong (KeyError)") and "internal detail" not in e.value.message


def test_generator_handlers_keep_streaming_and_show_errors() -> None:
    @common.shows_errors
    def gen() -> Iterator[int]:
        yield 1
        raise ValueError("bad input")

    out, err = drain(gen())
    assert out == [1] and isinstance(err, gr.Error) and err.message == "bad input"


def test_model_picker_offers_connected_models_and_the_council(api_env: FakeServer) -> None:
    choices = common.model_picker_choices()
    assert choices[0] == "local" and "mini" in choices and choices[-1] == common.COUNCIL
    assert not common.only_local()
    assert common.usd(0) == "free" and common.usd(None).startswith("an unknown") and common.usd(0.0123) == "$0.0123"


def test_with_no_key_only_local_and_the_hint() -> None:
    assert common.model_picker_choices() == ["local"]
    assert common.only_local() and "OPENAI_API_KEY" in common.CONNECT_HINT


# -- Point & Ask ------------------------------------------------------------------------------------------


def test_the_webcam_is_not_mirrored() -> None:
    camera = next(b for b in point_and_ask.demo.blocks.values() if getattr(b, "elem_id", None) == "pa-camera")
    assert camera.streaming and camera.webcam_options.mirror is False
    assert camera.sources == ["webcam"]


@needs_ocr
def test_camera_frames_pin_the_sharpest_still_frame_and_local_reads_it() -> None:
    state = point_and_ask.PointState()
    outs = stream_frames(state, card(["HELLO CAMERA", "PAGE 42"]))
    pictures = [o[0] for o in outs if not skipped(o[0])]
    assert len(pictures) == 1 and pictures[0].shape == (480, 640, 3)  # shown once, when it was found
    assert [o[2] for o in outs if not skipped(o[2])] == ["Before asking: at most **free** with local."]
    assert "Sharpest still frame of scene 1" in state.status
    out, err = drain(point_and_ask.ask("What does it say?", "local", point_and_ask.NO_PRESET, [], state))
    assert err is None
    chat, box, cost = out[-1][:3]
    assert box == "" and chat[0] == {"role": "user", "content": "What does it say?"}
    assert "HELLO CAMERA" in chat[1]["content"] and "Measured: **free**" in cost
    assert out[0][2].startswith("Before asking: at most **free**")
    # the conversation is pinned: a new scene does not change what follow-ups are about
    pinned = state.pinned
    cover = np.asarray(Image.open(ASSETS / "book_cover.png").convert("RGB").resize((640, 480)))
    outs = stream_frames(state, cover, t0=10.0)
    assert all(skipped(o[0]) for o in outs) and state.pinned is pinned
    out, err = drain(point_and_ask.ask("And the number?", "local", point_and_ask.NO_PRESET, chat, state))
    assert err is None and len(out[-1][0]) == 4 and "PAGE 42" in out[-1][0][3]["content"]
    assert len(state.chat.turns) == 4
    # new chat: the camera chooses again (the new scene)
    picture, _status, chat, _cost = point_and_ask.new_chat(state)
    assert chat == [] and state.chat is None and state.keeper.kept.scene == 2
    assert picture is state.keeper.kept.frame.pixels


def test_streamed_answer_follow_up_and_costs(api_env: FakeServer) -> None:
    state = point_and_ask.PointState()
    photo = np.asarray(Image.open(ASSETS / "book_photo.jpg").convert("RGB"))
    picture, status, chat = point_and_ask.on_photo(photo, state)
    assert picture is not None and chat == [] and "uploaded photo" in status
    before = point_and_ask.estimate("What is the title?", "mini", point_and_ask.NO_PRESET, state)
    assert before.startswith("Before asking: at most **$") and "image" in before
    api_env.script("The Quiet Orchard, by Mara Ellison.")
    out, err = drain(point_and_ask.ask("What is the title?", "mini", point_and_ask.NO_PRESET, [], state))
    assert err is None
    texts = [o[0][-1]["content"] for o in out]
    assert texts[0] == "" and "The Quiet " in texts and texts[-1] == "The Quiet Orchard, by Mara Ellison."
    assert "Measured: **$" in out[-1][2] and "estimated at most $" in out[-1][2]
    request = api_env.requests_for("openai")[-1]
    assert request.json["stream"] is True and len(request.images) == 1
    out, err = drain(point_and_ask.ask("Who wrote it?", "mini", point_and_ask.NO_PRESET, out[-1][0], state))
    assert err is None and len(out[-1][0]) == 4
    follow_up = api_env.requests_for("openai")[-1].json["messages"]
    assert [m["role"] for m in follow_up] == ["user", "assistant", "user"]
    assert follow_up[1]["content"] == "The Quiet Orchard, by Mara Ellison."


def test_preset_brings_its_question(api_env: FakeServer) -> None:
    state = point_and_ask.PointState()
    point_and_ask.on_photo(np.asarray(Image.open(ASSETS / "book_cover.png").convert("RGB")), state)
    assert "book" in point_and_ask.preset_choices() and not any(
        p.startswith("explain-") for p in point_and_ask.preset_choices())
    out, err = drain(point_and_ask.ask("", "mini", "book", [], state))
    assert err is None and out[-1][0][0]["content"] == "What is the title and author of this book?"
    assert "books" in api_env.requests_for("openai")[-1].json["messages"][0]["content"]


def test_errors_leave_the_question_and_no_half_chat(api_env: FakeServer) -> None:
    state = point_and_ask.PointState()
    out, err = drain(point_and_ask.ask("What is it?", "mini", point_and_ask.NO_PRESET, [], state))
    assert out == [] and isinstance(err, gr.Error) and "No picture yet" in err.message
    point_and_ask.on_photo(card(["X"]), state)
    out, err = drain(point_and_ask.ask("What is it?", "openai/gpt-4.1-mini-error-500", point_and_ask.NO_PRESET, [],
                                       state))
    assert isinstance(err, gr.Error) and "500" in err.message and "Traceback" not in err.message
    assert out[-1][0] == [] and out[-1][1] == "What is it?"  # the question is back in the box
    assert state.chat is None and state.pinned is None
    assert point_and_ask.estimate("hi", "nope/x", point_and_ask.NO_PRESET, state).startswith("Cannot estimate yet")
    out, err = drain(point_and_ask.ask("", "mini", point_and_ask.NO_PRESET, [], state))
    assert isinstance(err, gr.Error) and "Type a question" in err.message


def test_switching_model_starts_a_new_chat_about_the_same_picture(api_env: FakeServer) -> None:
    state = point_and_ask.PointState()
    point_and_ask.on_photo(card(["ONE"]), state)
    out, _ = drain(point_and_ask.ask("What?", "mini", point_and_ask.NO_PRESET, [], state))
    pinned = state.pinned
    chat, _cost = point_and_ask.on_model_change("nano", point_and_ask.NO_PRESET, state)
    assert chat == [] and state.chat is None and state.pinned is pinned
    out, _ = drain(point_and_ask.ask("What?", "nano", point_and_ask.NO_PRESET, [], state))
    assert state.chat.model.name == "openai/gpt-4.1-nano" and state.pinned is pinned and len(out[-1][0]) == 2


def test_the_council_is_a_model_choice(api_env: FakeServer) -> None:
    state = point_and_ask.PointState()
    point_and_ask.on_photo(card(["COUNCIL"]), state)
    before = point_and_ask.estimate("What is it?", common.COUNCIL, point_and_ask.NO_PRESET, state)
    assert "requests to the council" in before and "openai/gpt-4.1-mini" in before
    out, err = drain(point_and_ask.ask("What is it?", common.COUNCIL, point_and_ask.NO_PRESET, [], state))
    assert err is None and out[-1][0][-1]["content"] and "for the council round" in out[-1][2]
    assert len(api_env.requests_for("openai")) >= 3


# -- Label & Receipt --------------------------------------------------------------------------------------


def _fields(rows: list[list[str]]) -> dict[str, str]:
    return {r[0]: r[1] for r in rows}


@needs_ocr
def test_read_correct_explain_and_download(tmp_path: Path) -> None:
    state = label_receipt.LabelState()
    out = label_receipt.read(str(ASSETS / "receipt.png"), "auto", label_receipt.BEST_ENGINE, state)
    overlays, rows, checks, transcription, summary, json_btn, csv_btn, explanation = out
    with Image.open(ASSETS / "receipt.png") as original:
        assert len(overlays) == 1 and overlays[0][0].size == original.size
    fields = _fields(rows)
    assert fields["merchant"] == "GREENLEAF MARKET" and fields["total"] == "15.96"
    assert all(c[1] == "passed" for c in checks) and "GREENLEAF" in transcription and explanation == ""
    assert summary.startswith("**Receipt**")
    # the person corrects the total: the checks fail, the downloads follow
    rows = [[r[0], "19.96" if r[0] == "total" else r[1], r[2]] for r in rows]
    rows, checks, _t, summary, json_btn, csv_btn = label_receipt.confirm(rows, transcription, state)
    assert _fields(rows)["total"] == "19.96"
    assert [c[:2] for c in checks[:2]] == [["total_breakdown", "FAILED"], ["change", "FAILED"]]
    assert "**2 failed**" in summary
    data = json.loads(Path(json_btn.value["path"]).read_text())
    assert data["document"]["total"] == "19.96"
    table = list(csv.reader(io.StringIO(Path(csv_btn.value["path"]).read_text())))
    assert table[0] == ["section", "field", "value", "detail"]
    assert table[-2][:3] == ["check", "total_breakdown", "failed"]
    # explain sends the confirmed document (local: what the verified fields say)
    explained, *_ = label_receipt.explain_document(rows, transcription, "local", state)
    assert "total GBP 19.96" in explained and "CHECK FAILED" in explained
    assert json.loads(Path(state.folder / "receipt.json").read_text())["explanation"]["model"] == "local"


@needs_ocr
def test_explain_with_a_model_sends_picture_and_transcription(api_env: FakeServer) -> None:
    state = label_receipt.LabelState()
    _o, rows, _c, transcription, *_ = label_receipt.read(str(ASSETS / "receipt.png"), "receipt",
                                                          label_receipt.BEST_ENGINE, state)
    api_env.script(json.dumps({"summary": "Groceries.", "parts": [{"name": "Oat Milk", "explanation": "milk"}],
                               "cautions": ["check the eggs"], "key_numbers": {"total": "16.96"}}))
    explained, *_ = label_receipt.explain_document(rows, transcription + "\nNOTE corrected by hand", "mini", state)
    assert "Groceries." in explained and "**Disagreement** on total" in explained and "$" in explained
    request = api_env.requests_for("openai")[-1]
    assert len(request.images) == 1 and "NOTE corrected by hand" in request.text


@needs_ocr
def test_pdf_pages_get_overlays(tmp_path: Path) -> None:
    pdf = tmp_path / "receipt.pdf"
    pdf.write_bytes(image_pdf([Image.open(ASSETS / "receipt.png").convert("RGB")] * 2))
    state = label_receipt.LabelState()
    overlays, rows, *_ = label_receipt.read(str(pdf), "receipt", label_receipt.BEST_ENGINE, state)
    assert [c for _, c in overlays] == ["page 1", "page 2"] and len(state.pages) == 2
    assert "MARKET" in _fields(rows)["merchant"]


def test_label_errors_are_messages(tmp_path: Path) -> None:
    state = label_receipt.LabelState()
    with pytest.raises(gr.Error, match="Upload a photo or PDF"):
        label_receipt.read(None, "auto", label_receipt.BEST_ENGINE, state)
    with pytest.raises(gr.Error, match="Read a receipt or label first"):
        label_receipt.confirm([], "", state)
    assert all(skipped(o) for o in label_receipt.on_upload(None, "auto", label_receipt.BEST_ENGINE, state))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(gr.Error) as e:
        label_receipt.read(str(bad), "auto", label_receipt.BEST_ENGINE, state)
    assert "bad.png" in e.value.message


@needs_ocr
def test_a_wrong_row_is_named(tmp_path: Path) -> None:
    state = label_receipt.LabelState()
    _o, rows, *_ = label_receipt.read(str(ASSETS / "receipt.png"), "receipt", label_receipt.BEST_ENGINE, state)
    with pytest.raises(gr.Error, match=r"total: .*decimal"):
        label_receipt.confirm([*rows[:-1], ["total", "lots", ""]], "", state)
    with pytest.raises(gr.Error, match="no field 'colour'"):
        label_receipt.confirm([*rows, ["colour", "red", ""]], "", state)


# -- Imagine ----------------------------------------------------------------------------------------------


def _source(caption: str = "a lighthouse at dawn", **kw: Any) -> list[Any]:
    args = {"kind": imagine.CAPTION, "caption": caption, "headlines": "", "photo": None, "style": "watercolour",
            "image_model": "replicate/black-forest-labs/flux-schnell", "count": 2, "seed": "7", **kw}
    return list(args.values())


def test_write_edit_generate_select_and_video(api_env: FakeServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    state = imagine.ImagineState()
    prompt, estimate = imagine.write_prompt(*_source(), state)
    assert prompt.startswith("a lighthouse at dawn, loose watercolour") and "**Estimated cost: $0.00600**" in estimate
    assert not api_env.requests_for("replicate")  # writing and pricing sends nothing
    edited = prompt + ", a red door"
    with pytest.warns(UserWarning, match="check the new estimate"):  # gr.Warning outside a page
        gallery, shown, _prov = imagine.generate(*_source(), edited, state, progress=lambda *a, **k: None)
    assert skipped(gallery) and "$0.00600" in shown and not api_env.requests_for("replicate")
    gallery, status, provenance = imagine.generate(*_source(), edited, state, progress=lambda *a, **k: None)
    assert len(gallery) == 2 and all(Path(f).is_file() for f, _ in gallery) and "seed 7" in gallery[0][1]
    assert provenance["prompt"] == edited and provenance["writer"]["edited"] is True
    assert provenance["source"]["caption"] == "a lighthouse at dawn" and "Made 2 picture(s)" in status
    sent = [r for r in api_env.requests_for("replicate") if r.method == "POST" and r.json]
    assert all(r.json["input"]["prompt"] == edited for r in sent)
    # select the second picture: its provenance, a video prompt and the video's estimate
    record, video_prompt, video_estimate = imagine.select_image(gr.SelectData(None, {"index": 1, "value": None}),
                                                                "replicate/kwaivgi/kling-v2.1", "", state)
    assert record["job_id"] and "lighthouse" in video_prompt.lower() and "video" in video_estimate
    video, status, video_prov = imagine.make_video(video_prompt, "replicate/kwaivgi/kling-v2.1", "", state,
                                                   progress=lambda *a, **k: None)
    assert Path(video).is_file() and video_prov["kind"] == "video"
    assert Path(video_prov["parent"]["file"]).name == Path(gallery[1][0]).name


def test_headlines_and_photo_sources(api_env: FakeServer) -> None:
    state = imagine.ImagineState()
    news = "Markets rally after a rate cut\n\nFloods in the valley"
    prompt, _ = imagine.write_prompt(*_source("news", kind=imagine.HEADLINES, headlines=news), state)
    assert "Markets rally" in prompt
    photo = np.asarray(Image.open(ASSETS / "book_cover.png").convert("RGB"))
    prompt, _ = imagine.write_prompt(*_source("", kind=imagine.PHOTO, photo=photo), state)
    assert prompt  # described by the local engine, no key needed
    with pytest.raises(gr.Error, match="Upload a photo"):
        imagine.write_prompt(*_source("", kind=imagine.PHOTO), state)
    with pytest.raises(gr.Error, match="Write a caption"):
        imagine.write_prompt(*_source("  "), state)
    with pytest.raises(gr.Error, match="seed must be a whole number"):
        imagine.write_prompt(*_source(seed="abc"), state)
    _caption, headlines, photo_box = imagine.on_source_kind(imagine.HEADLINES)
    assert headlines.visible is True and photo_box.visible is False


def test_generating_without_a_key_says_which(tmp_path: Path) -> None:
    state = imagine.ImagineState()
    prompt, estimate = imagine.write_prompt(*_source(), state)  # writing and pricing need no key
    assert "$" in estimate
    with pytest.raises(gr.Error) as e:
        imagine.generate(*_source(), prompt, state, progress=lambda *a, **k: None)
    assert "REPLICATE_API_TOKEN" in e.value.message and "restart the app" in e.value.message
    with pytest.raises(gr.Error, match="Write the prompt first"):
        imagine.generate(*_source(), "", state, progress=lambda *a, **k: None)


# -- launching --------------------------------------------------------------------------------------------


def test_auth_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert launch.parse_auth("ann:s3cr:et") == ("ann", "s3cr:et")
    assert launch.parse_auth(None) is None
    monkeypatch.setenv(launch.AUTH_ENV, "bob:pw")
    assert launch.parse_auth(None) == ("bob", "pw")
    for bad in ("nobody", ":pw", "ann:"):
        with pytest.raises(ValueError, match="user:password"):
            launch.parse_auth(bad)


def test_launch_options_are_safe_by_default(caplog: pytest.LogCaptureFixture) -> None:
    options = launch.LaunchOptions()
    assert options.host == "127.0.0.1" and not options.share and not options.exposed and options.auth is None
    kwargs = launch.prepare(point_and_ask.demo, options)
    assert kwargs["server_name"] == "127.0.0.1" and kwargs["share"] is False and kwargs["max_file_size"] == "50mb"
    assert kwargs["show_error"] is False and "api" not in kwargs["footer_links"]
    assert point_and_ask.demo._queue.default_concurrency_limit == launch.DEFAULT_CONCURRENCY
    assert point_and_ask.demo._queue.max_size == launch.DEFAULT_MAX_QUEUE
    with caplog.at_level("WARNING", logger="apps"):
        launch.prepare(point_and_ask.demo, launch.LaunchOptions(host="0.0.0.0", concurrency=2))
    assert "without a password" in caplog.text
    assert launch.LaunchOptions(host="::1").exposed is False and launch.LaunchOptions(share=True).exposed
    with pytest.raises(ValueError, match="--port"):
        launch.LaunchOptions(port=70000)


def test_vision_app_refuses_bad_options_in_one_line() -> None:
    from typer.testing import CliRunner

    from vision.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["app", "--auth", "nocolon"])
    assert result.exit_code == 2 and "error: --auth (or VISION_APP_AUTH) must be user:password" in result.output
    result = runner.invoke(app, ["app", "--port", "70000"])
    assert result.exit_code == 2 and "--port must be between 1 and 65535" in result.output


def test_vision_app_without_gradio_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from typer.testing import CliRunner

    from vision.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    result = CliRunner().invoke(app, ["app"])
    assert result.exit_code == 2 and "pip install 'vision-toolkit[apps]'" in result.output


@pytest.mark.network
@pytest.mark.slow
def test_vision_app_serves_this_machine_behind_a_sign_in(tmp_path: Path) -> None:
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    vision_cmd = shutil.which("vision", path=str(Path(sys.executable).parent))
    if vision_cmd is None:
        pytest.skip("the `vision` console script is not installed in this environment (pip install -e .)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "VISION_APP_AUTH": "ann:s3cret", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = tmp_path / "app.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([vision_cmd, "app", "--port", str(port)], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"{base}/", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{base}/config", timeout=5)
        assert denied.value.code == 401
        denied.value.close()
        form = urllib.parse.urlencode({"username": "ann", "password": "wrong"}).encode()
        with pytest.raises(urllib.error.HTTPError) as wrong:
            urllib.request.urlopen(f"{base}/login", data=form, timeout=5)
        assert wrong.value.code == 400
        wrong.value.close()
        form = urllib.parse.urlencode({"username": "ann", "password": "s3cret"}).encode()
        with urllib.request.urlopen(f"{base}/login", data=form, timeout=5) as r:
            assert r.status == 200
        assert f"Running on local URL:  http://127.0.0.1:{port}" in log.read_text()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # this machine's other address, if any
            try:
                probe.connect(("10.255.255.255", 1))  # UDP: nothing is sent
                other = probe.getsockname()[0]
            except OSError:
                other = "127.0.0.1"
        if not other.startswith("127."):
            with pytest.raises(OSError):  # served on 127.0.0.1 only
                socket.create_connection((other, port), timeout=2).close()
    finally:
        proc.terminate()
        proc.wait(15)
