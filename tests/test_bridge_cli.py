"""`vision imagine` and `vision jobs` as a user runs them: real subprocesses, the fake server, a kill -9."""

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

from vision.bridge.provenance import read_index
from vision.testing import FakeServer

from .conftest import ROOT

OPENAI_KEY = "sk-cli-bridge-abcdefgh12345678"
REPLICATE_KEY = "r8_clibridgeabcdefgh1234"


@pytest.fixture
def env(fake: FakeServer, tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "VISION_"))}
    bindir = str(Path(sys.executable).parent)
    e.update(PATH=f"{bindir}:{e.get('PATH', '')}", OPENAI_BASE_URL=fake.openai_base_url, OPENAI_API_KEY=OPENAI_KEY,
             REPLICATE_BASE_URL=fake.replicate_base_url, REPLICATE_API_TOKEN=REPLICATE_KEY,
             REPLICATE_POLL_INTERVAL="0.05", VISION_DATA_DIR=str(tmp_path / "data"),
             VISION_CONFIG=str(tmp_path / "none.toml"), VISION_TIMEOUT="20")
    return e


@pytest.fixture
def headlines(tmp_path: Path) -> Path:
    p = tmp_path / "headlines.txt"
    p.write_text("Flood waters rise in the river valley\nPresident Jane Doe opens the new solar farm\n")
    return p


def run(env: dict[str, str], cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vision", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_dry_run_prints_prompt_request_and_cost_and_sends_nothing(env: dict[str, str], tmp_path: Path,
                                                                   headlines: Path, fake: FakeServer) -> None:
    r = run(env, tmp_path, "imagine", "today's headlines", "--headlines", str(headlines), "--style", "cyberpunk",
            "--video", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "image prompt (template, template-1, diffusion" in r.stdout
    assert "a figure symbolising the president opens the new solar farm" in r.stdout
    assert "replicate/black-forest-labs/flux-schnell" in r.stdout and "replicate/kwaivgi/kling-v2.1" in r.stdout
    assert '"start_image": "<start image <the generated image>>"' in r.stdout
    assert "estimated cost: $0.2530" in r.stdout
    assert not fake.requests and not (tmp_path / "outputs").exists()
    j = run(env, tmp_path, "imagine", "a cat", "--dry-run", "--json")
    plan = json.loads(j.stdout)
    assert plan["dry_run"] and plan["jobs"][0]["inputs"]["prompt"] == "a cat"


def test_headlines_to_image_and_video_end_to_end(env: dict[str, str], tmp_path: Path, headlines: Path) -> None:
    r = run(env, tmp_path, "imagine", "today's headlines", "--headlines", str(headlines), "--style", "cyberpunk",
            "--video")
    assert r.returncode == 0, r.stderr
    files = [Path(line) for line in r.stdout.splitlines()]
    assert [f.suffix for f in files] == [".webp", ".mp4"] and all(f.parent == tmp_path / "outputs" for f in files)
    for f in files:
        side = json.loads(f.with_name(f.name + ".json").read_text())
        assert side["provenance"]["source"]["headlines"][0] == "Flood waters rise in the river valley"
    assert [e["kind"] for e in read_index(tmp_path / "outputs")] == ["image", "video"]
    assert "estimated $0.2530" in r.stderr and "job " in r.stderr and "completed" in r.stderr
    listing = run(env, tmp_path, "jobs")
    assert listing.returncode == 0 and listing.stdout.count("completed") == 2
    written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert OPENAI_KEY not in written and REPLICATE_KEY not in written


def _jobs(data: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (data / "jobs").glob("*.json")] if (data / "jobs").is_dir() else []


def test_killed_mid_job_then_resumed(env: dict[str, str], tmp_path: Path, headlines: Path) -> None:
    data = Path(env["VISION_DATA_DIR"])
    proc = subprocess.Popen([sys.executable, "-m", "vision", "imagine", "today's headlines", "--headlines",
                             str(headlines), "--style", "cyberpunk", "--video", "--video-model",
                             "replicate/kwaivgi/kling-v2.1-slow-3"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            videos = [j for j in _jobs(data) if j["kind"] == "video" and j.get("provider_job_id")]
            if videos:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the video job was never submitted")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    [video] = [j for j in _jobs(data) if j["kind"] == "video"]
    assert video["status"] in {"starting", "processing"} and not list((tmp_path / "outputs").glob("*.mp4"))
    active = run(env, tmp_path, "jobs", "--active")
    assert video["id"] in active.stdout
    r = run(env, tmp_path, "jobs", "resume")
    assert r.returncode == 0, r.stderr
    [mp4] = [Path(line) for line in r.stdout.splitlines()]
    assert mp4.suffix == ".mp4" and mp4.is_file() and mp4.with_name(mp4.name + ".json").is_file()
    assert [e["kind"] for e in read_index(tmp_path / "outputs")] == ["image", "video"]
    assert run(env, tmp_path, "jobs", "resume").stderr.strip() == "no unfinished jobs"


@pytest.mark.parametrize(("args", "message", "code"), [
    (["imagine", "a cat", "--style", "cyberpnk"], "error: unknown style 'cyberpnk'", 2),
    (["imagine", "--headlines", "missing.txt"], "error: missing.txt: no such headlines file", 1),
    (["imagine", "a cat", "--image-model", "openai/gpt-image-1"], "shut down on 2026-10-23", 2),
    (["imagine"], "error: the caption is empty", 2),
    (["imagine", "a cat", "--image-model", "replicate/black-forest-labs/flux-schnell-refuse"],
     "refused: NSFW content detected", 1),
    (["jobs", "resume", "nothere"], "is not a job id", 2),
])
def test_errors_are_one_line(env: dict[str, str], tmp_path: Path, args: list[str], message: str, code: int) -> None:
    r = run(env, tmp_path, *args)
    assert r.returncode == code, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1


def test_readme_section_commands_run(env: dict[str, str], tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Pictures and videos from captions", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block
    lines = [re.sub(r"\s+#.*$", "", ln).strip() for ln in block.group(1).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("python -m vision.testing", "export"))]
    assert sum(ln.startswith("vision ") for ln in lines) >= 5
    for line in lines:
        r = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                           check=False)
        assert r.returncode == 0, f"{line}\n{r.stderr}"
    assert len(list((tmp_path / "gallery").glob("*.png"))) == 3
