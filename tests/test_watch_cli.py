"""`vision watch` and `vision snap` end to end: a real subprocess, real sources, the fake server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vision.frame import Frame
from vision.testing import FakeServer, wait_until
from vision.testing.mjpeg import MjpegServer

from .camera_support import STORY_SCENES, still_image, story_clip
from .conftest import ASSETS, ROOT, TESSERACT, has_rapidocr
from .test_cli import run


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("clips") / "story.mp4"
    return path, story_clip(path)


@pytest.fixture
def fake_env(fake: FakeServer) -> dict[str, str]:
    return {"OPENAI_BASE_URL": fake.openai_base_url, "OPENAI_API_KEY": "sk-watch-test-abcdefgh12345678"}


def test_watch_video_json_one_line_per_scene(story: tuple[Path, list[str]], fake_env: dict[str, str],
                                             fake: FakeServer) -> None:
    path, labels = story
    result = run("watch", "--video", str(path), "What is this?", "-m", "openai/gpt-4.1-mini", "--json", env=fake_env)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(STORY_SCENES)
    for row in rows:
        assert {"time", "frame", "sharpness", "answer", "model", "usage"} <= set(row)
        assert labels[row["frame"]].startswith("hold:")
        assert row["model"] == "openai/gpt-4.1-mini" and "What is this?" in row["answer"]
    assert rows[-1]["total_cost_usd"] == pytest.approx(sum(r["usage"]["cost_usd"] for r in rows))
    assert len(fake.requests_for("openai")) == len(STORY_SCENES)
    assert f"{len(STORY_SCENES)} ask(s) about {len(STORY_SCENES)} scene(s)" in result.stderr
    history = run("history", "--json")
    assert len(json.loads(history.stdout)) == len(STORY_SCENES)


def test_watch_the_sample_clip_with_the_local_engine() -> None:
    result = run("watch", "--video", str(ASSETS / "scenes.mp4"), "What is this?", "--no-history")
    assert result.returncode == 0, result.stderr
    heads = re.findall(r"^-- scene (\d+) .* frame (\d+) .*$", result.stdout, re.M)
    assert [h[0] for h in heads] == ["1", "2", "3"]
    assert result.stdout.count("Local engine (not a language model)") == 3
    assert "[local · free" in result.stderr and "total free" in result.stderr
    if TESSERACT or has_rapidocr():
        assert '"THE QUIET ORCHARD"' in result.stdout and "GREENLEAF MARKET" in result.stdout


def test_watch_a_network_camera(story: tuple[Path, list[str]], fake_env: dict[str, str]) -> None:
    with MjpegServer(story[0]) as camera:
        result = run("watch", "--url", camera.url, "What is this?", "-m", "openai/gpt-4.1-mini", "--json",
                     "--max-asks", "1", env=fake_env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert "(mjpeg, 640x360)" in result.stderr


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--camera", "63"], 1, "error: camera 63: no such camera"),
    (["--video", "missing.mp4"], 1, "error: missing.mp4: no such file or folder"),
    (["--url", "ftp://example.com/x"], 1, "unsupported URL scheme"),
    (["--url", "192.168.1.20:8080"], 2, "--url needs a full URL"),
    (["--camera", "0", "--video", "x.mp4"], 2, "give one source, not --camera and --video"),
    (["--source", "x", "--roi", "zoom"], 2, "--roi must be one of"),
    (["--source", "x", "--size", "big"], 2, "--size must be WIDTHxHEIGHT"),
])
def test_watch_errors_are_one_line(args: list[str], code: int, message: str) -> None:
    if args[:2] == ["--camera", "63"] and (not sys.platform.startswith("linux") or Path("/dev/video63").exists()):
        pytest.skip("needs Linux without a /dev/video63")
    result = run("watch", *args, "What is this?")
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_watch_missing_key_fails_before_watching(story: tuple[Path, list[str]]) -> None:
    result = run("watch", "--video", str(story[0]), "What is this?", "-m", "openai/gpt-4.1-mini")
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr and "Traceback" not in result.stderr


def _watch_process(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_"))}
    full_env.update(env)
    return subprocess.Popen([sys.executable, "-m", "vision", "watch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env)


def test_ctrl_c_waits_for_the_answer_in_flight_then_stops(story: tuple[Path, list[str]], fake: FakeServer,
                                                          fake_env: dict[str, str]) -> None:
    fake.script(delay=1.5, times=None)
    with MjpegServer(story[0]) as camera:
        proc = _watch_process(["--url", camera.url, "What is this?", "-m", "openai/gpt-4.1-mini", "--json"], fake_env)
        try:
            assert wait_until(lambda: len(fake.requests_for("openai")) >= 1, timeout=30)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert "waiting for the answer already paid for" in err
    assert len(out.splitlines()) == 1 and json.loads(out)["answer"]  # the paid-for answer was not lost
    assert "Traceback" not in err and "1 ask(s)" in err


def test_ctrl_c_while_idle_stops_cleanly(fake_env: dict[str, str]) -> None:
    dark = [Frame.from_array(__import__("numpy").full((120, 160, 3), 3, "uint8")).pixels] * 2
    with MjpegServer(dark, fps=10) as camera:
        proc = _watch_process(["--url", camera.url, "What is this?", "-m", "openai/gpt-4.1-mini"], fake_env)
        try:
            assert wait_until(lambda: camera.connections >= 1, timeout=30)
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in err and "0 ask(s)" in err and "Traceback" not in err
    assert out == ""


def test_snap_saves_the_sharpest_still_frame(story: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, labels = story
    out = tmp_path / "best.jpg"
    result = run("snap", str(path), "--out", str(out), "--seconds", "0.9", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["path"] == str(out) and data["still"] is True
    assert labels[data["frame"]] == "hold:0" and data["time"] <= 0.9
    assert Frame.load(out).size == (640, 360)
    # over two seconds the camera pans to the chart: a still frame wins, never a blurred pan frame
    longer = run("snap", str(path), "--out", str(out), "--seconds", "2", "--json")
    assert labels[json.loads(longer.stdout)["frame"]].startswith("hold:")


def test_snap_from_an_image_and_bad_output(tmp_path: Path) -> None:
    src = still_image(tmp_path / "in.jpg", scene=1)
    result = run("snap", str(src), "--out", str(tmp_path / "out.png"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "out.png") and (tmp_path / "out.png").exists()
    bad = run("snap", str(src), "--out", str(tmp_path / "out.gifx"))
    assert bad.returncode == 2 and "--out must end in .jpg, .png or .webp" in bad.stderr
    assert not (tmp_path / "out.gifx").exists()
    missing = run("snap", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.jpg"))
    assert missing.returncode == 1 and "no such file or folder" in missing.stderr
    assert not (tmp_path / "x.jpg").exists()


def test_readme_camera_commands_run(tmp_path: Path) -> None:
    """The shell commands of the README's camera section run as written (the fake server's lines aside)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Live camera", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    lines = [re.sub(r"\s+#.*$", "", ln).strip() for b in blocks for ln in b.splitlines()]
    commands = [ln for ln in lines if ln.startswith("vision ") and "--camera" not in ln and "rtsp://" not in ln
                and "192.168." not in ln]
    assert len(commands) >= 3
    with FakeServer() as server, MjpegServer(ASSETS / "scenes.mp4") as camera:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_"))}
        bindir = str(Path(sys.executable).parent)
        env.update(PATH=f"{bindir}:{env.get('PATH', '')}", OPENAI_BASE_URL=server.openai_base_url,
                   OPENAI_API_KEY="sk-readme-0123456789")
        (tmp_path / "assets").symlink_to(ASSETS)  # run where the README's paths hold, writing nothing to the repo
        for command in commands:
            command = command.replace("http://127.0.0.1:8081/video", camera.url)
            result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                    timeout=120, check=False)
            assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert (tmp_path / "snap.jpg").exists()
