"""The `vision` command end to end: a real subprocess, the real clients, the fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vision.testing import FakeServer

from .conftest import ASSETS, TESSERACT, has_rapidocr


def run(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "vision", *args], capture_output=True, text=stdin is None,
                          input=stdin, env=full_env, timeout=timeout, check=False)


@pytest.fixture
def fake_env(fake: FakeServer) -> dict[str, str]:
    return {"OPENAI_BASE_URL": fake.openai_base_url, "REPLICATE_BASE_URL": fake.replicate_base_url,
            "OPENAI_API_KEY": "sk-cli-test-abcdefgh12345678", "REPLICATE_API_TOKEN": "r8_clitestabcdefgh1234"}


@pytest.mark.skipif(not (TESSERACT or has_rapidocr()), reason="no OCR engine installed")
def test_ask_local_on_the_sample_image() -> None:
    result = run("ask", str(ASSETS / "book_photo.jpg"), "What is the title of this book?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Local engine (not a language model)")
    assert '"THE QUIET ORCHARD"' in result.stdout
    assert "[local" in result.stderr and "free" in result.stderr


def test_ask_json_against_openai_compatible_server(fake_env: dict[str, str], fake: FakeServer) -> None:
    result = run("ask", str(ASSETS / "book_photo.jpg"), "What is this?", "-m", "openai/gpt-4.1-mini", "--json",
                 env=fake_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"answer", "model", "usage", "latency_ms"} <= set(data)
    assert {"input_tokens", "output_tokens", "cost_usd"} <= set(data["usage"])
    assert data["model"] == "openai/gpt-4.1-mini"
    assert "What is this?" in data["answer"]
    assert data["usage"]["cost_usd"] > 0
    assert fake.requests[-1].images[0].format == "JPEG"


def test_ask_against_replicate(fake_env: dict[str, str]) -> None:
    result = run("ask", str(ASSETS / "book_photo.jpg"), "What is this?", "-m", "replicate/yorickvp/llava-13b",
                 env=fake_env)
    assert result.returncode == 0, result.stderr
    assert "[yorickvp/llava-13b] I received 1 image(s)" in result.stdout


def test_stream(fake_env: dict[str, str]) -> None:
    result = run("ask", str(ASSETS / "book_cover.png"), "Stream?", "-m", "openai/gpt-4.1", "--stream", env=fake_env)
    assert result.returncode == 0, result.stderr
    assert "Stream?" in result.stdout


def test_dry_run_json_sends_nothing(fake_env: dict[str, str], fake: FakeServer) -> None:
    result = run("ask", str(ASSETS / "book_photo.jpg"), "q", "-m", "openai/gpt-4.1", "--dry-run", "--json",
                 env=fake_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    image = data["plan"]["images"][0]
    assert image["source_size"] == [1600, 1200]
    assert image["sent_size"] == [683, 512]
    assert image["image_tokens"] == 425 and image["bytes"] > 1000
    assert data["plan"]["estimated_max_cost_usd"] > data["plan"]["estimated_input_cost_usd"] > 0
    assert "base64 chars>" in json.dumps(data["request"])
    assert not fake.requests


def test_save_payload_writes_the_exact_bytes(fake_env: dict[str, str], fake: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "payload"
    result = run("ask", str(ASSETS / "book_photo.jpg"), "q", "-m", "openai/gpt-4.1-mini", "--save-payload", str(out),
                 env=fake_env)
    assert result.returncode == 0, result.stderr
    saved = (out / "image-1.jpg").read_bytes()
    import hashlib

    assert hashlib.sha256(saved).hexdigest() == fake.requests[-1].images[0].sha256
    assert json.loads((out / "plan.json").read_text())["images"][0]["sha256"] == fake.requests[-1].images[0].sha256


def test_stdin_image(fake_env: dict[str, str]) -> None:
    data = (ASSETS / "book_cover.png").read_bytes()
    result = run("ask", "-", "from stdin?", "-m", "openai/gpt-4.1-mini", env=fake_env, stdin=data)
    assert result.returncode == 0, result.stderr
    assert b"from stdin?" in result.stdout


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["ask", "missing.jpg", "q"], "missing.jpg: no such file", 1),
        (["ask", str(ASSETS / "book_cover.png"), "q", "-m", "nope/x"], "unknown model 'nope/x'", 2),
        (["ask", str(ASSETS / "book_cover.png"), "q", "-m", "openai/gpt-3.5-turbo"], "no vision", 2),
        (["ask", str(ASSETS / "book_cover.png"), "q", "-m", "openai/gpt-4.1"], "set OPENAI_API_KEY", 2),
        (["ask", str(ASSETS / "book_cover.png"), "q", "-o", "temperature=hot"], "invalid model option", 2),
        (["ask", str(ASSETS / "book_cover.png"), "q", "-o", "oops"], "not key=value", 2),
        (["ask", str(ASSETS)], "is a directory", 1),
        (["ask", "just a question?"], "no image given", 2),
    ],
)
def test_errors_are_one_line(args: list[str], message: str, code: int) -> None:
    result = run(*args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_provider_errors_are_one_line(fake_env: dict[str, str]) -> None:
    result = run("ask", str(ASSETS / "book_cover.png"), "q", "-m", "openai/x-error-401", env=fake_env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: openai/x-error-401: the API key was rejected")
    assert "sk-cli-test" not in result.stderr


def test_models_never_shows_a_key(fake_env: dict[str, str]) -> None:
    result = run("models", "--json", "--paths", env=fake_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    openai = next(p for p in data["providers"] if p["provider"] == "openai")
    assert openai["key_set"] is True and openai["base_url"] == fake_env["OPENAI_BASE_URL"]
    assert "sk-cli-test" not in result.stdout
    text = run("models", env=fake_env)
    assert "sk-cli-test" not in text.stdout and "OPENAI_API_KEY set" in text.stdout


def test_history_list_and_show(fake_env: dict[str, str]) -> None:
    assert run("ask", str(ASSETS / "book_cover.png"), "remember me", "-m", "openai/gpt-4.1-mini",
               env=fake_env).returncode == 0
    listed = run("history", "--json")
    entries = json.loads(listed.stdout)
    assert entries[0]["prompt"] == "remember me"
    shown = run("history", "show", entries[0]["id"][:8])
    assert shown.returncode == 0 and "remember me" in shown.stdout
    missing = run("history", "show", "zzzz")
    assert missing.returncode == 2 and "no history entry" in missing.stderr
    no_log = run("ask", str(ASSETS / "book_cover.png"), "forget me", "-m", "openai/gpt-4.1-mini", "--no-history",
                 env=fake_env)
    assert no_log.returncode == 0
    assert "forget me" not in run("history").stdout


def test_chat_follow_ups(fake_env: dict[str, str], fake: FakeServer) -> None:
    result = run("chat", str(ASSETS / "book_cover.png"), "-m", "openai/gpt-4.1-mini", env=fake_env,
                 stdin=b"first question\nsecond question\n/new\nthird\n/quit\n")
    assert result.returncode == 0, result.stderr
    assert b"first question" in result.stdout and b"second question" in result.stdout
    calls = fake.requests_for("openai", "/v1/chat/completions")
    assert [len(c.json["messages"]) for c in calls] == [1, 3, 1]


def test_help_and_version() -> None:
    assert "Ask a question about one or more images" in run("--help").stdout
    assert run("--version").stdout.startswith("vision-toolkit ")
