"""`vision.testing` itself: the shell entry point, control endpoints, directives and wire details."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import replicate

from vision.testing import FakeServer, directives


def test_shell_entry_point_prints_sourceable_lines() -> None:
    with subprocess.Popen([sys.executable, "-m", "vision.testing", "--port", "0"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            first = proc.stdout.readline().strip()  # type: ignore[union-attr]
            second = proc.stdout.readline().strip()  # type: ignore[union-attr]
            assert first.startswith("OPENAI_BASE_URL=http://127.0.0.1:") and first.endswith("/v1")
            assert second.startswith("REPLICATE_BASE_URL=http://127.0.0.1:")
            base = second.split("=", 1)[1]
            assert httpx.get(f"{base}/_control/health", timeout=5).json()["ok"] is True
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0


def test_port_in_use_is_a_clear_error(fake: FakeServer) -> None:
    result = subprocess.run([sys.executable, "-m", "vision.testing", "--port", str(fake.port)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "cannot listen" in result.stderr


def test_control_endpoints_script_and_record(fake: FakeServer) -> None:
    httpx.post(f"{fake.url}/_control/script", json={"text": "scripted!", "model": "gpt-*"}, timeout=5)
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-secret-value-123456", max_retries=0) as client:
        out = client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "scripted!"
    recorded = httpx.get(f"{fake.url}/_control/requests", timeout=5).json()
    assert recorded[-1]["texts"] == ["hi"]
    assert "sk-secret-value" not in json.dumps(recorded), "keys never leave through the control API"
    httpx.post(f"{fake.url}/_control/reset", timeout=5)
    assert fake.requests == []


def test_directives_parse() -> None:
    d = directives("openai/fake-slow-0.5-error-503")
    assert d.delay == 0.5 and d.status == 503
    assert directives("x-refuse").fault == "refuse"
    assert directives("replicate/me/model-fail").fault == "fail"
    assert directives("plain-model").fault is None


def test_flaky_then_ok(fake: FakeServer) -> None:
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=3) as client:
        out = client.chat.completions.create(model="m-flaky-2", messages=[{"role": "user", "content": "x"}])
    assert out.choices[0].message.content
    assert len(fake.requests) == 3


def test_openai_validation_errors(fake: FakeServer) -> None:
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError, match=r"image_url\.url"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "ftp://x"}}]}])
        with pytest.raises(openai.BadRequestError, match="detail"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.jpg", "detail": "ultra"}}]}])


def test_stream_has_usage_chunk_and_done(fake: FakeServer) -> None:
    with httpx.stream("POST", f"{fake.openai_base_url}/chat/completions", timeout=10,
                      headers={"Authorization": "Bearer k"},
                      json={"model": "m", "stream": True, "stream_options": {"include_usage": True},
                            "messages": [{"role": "user", "content": "hello there"}]}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    usage_chunk = json.loads(events[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0


@pytest.fixture
def rclient(fake: FakeServer) -> Iterator[replicate.Client]:
    client = replicate.Client(api_token="r8_x", base_url=fake.replicate_base_url)
    client.poll_interval = 0.02
    yield client
    client._client.close()


def test_replicate_prefer_wait_and_polling(fake: FakeServer, rclient: replicate.Client) -> None:
    client = rclient
    blocking = client.models.predictions.create(model="a/b", input={"prompt": "hi"}, wait=5)
    assert blocking.status == "succeeded"
    assert fake.requests[-1].headers["prefer"] == "wait=5"
    fake.prediction_seconds = 0.4
    started = client.models.predictions.create(model="a/b", input={"prompt": "hi"})
    assert started.status == "starting"
    seen = {started.status}
    while started.status not in {"succeeded", "failed", "canceled"}:
        time.sleep(0.02)
        started.reload()
        seen.add(started.status)
    assert {"starting", "processing", "succeeded"} <= seen
    assert "100%|" in started.logs and started.metrics["predict_time"] > 0


def test_replicate_cancel(fake: FakeServer, rclient: replicate.Client) -> None:
    fake.prediction_seconds = 5
    pred = rclient.predictions.create(model="a/b", input={"prompt": "hi"})
    pred.cancel()
    assert pred.status == "canceled"


def test_replicate_run_with_version(fake: FakeServer, rclient: replicate.Client) -> None:
    out = rclient.run("a/b:" + "0" * 64, input={"prompt": "tell me"})
    assert "tell me" in "".join(out)


def test_env_isolation_is_real() -> None:
    assert "OPENAI_API_KEY" not in os.environ


def test_structured_output_follows_the_schema(fake: FakeServer) -> None:
    schema = {
        "type": "object",
        "properties": {
            "ranking": {"type": "array", "items": {"enum": ["A", "B", "C"]}, "uniqueItems": True},
            "total": {"type": "number"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 2},
        },
        "$defs": {"Item": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as client:
        answers = [json.loads(client.chat.completions.create(
            model=m, messages=[{"role": "user", "content": "rank"}], response_format=fmt,  # type: ignore[arg-type]
        ).choices[0].message.content or "") for m in ("model-one", "model-two", "model-one")]
    assert sorted(answers[0]["ranking"]) == ["A", "B", "C"]
    assert isinstance(answers[0]["total"], float) and len(answers[0]["items"]) == 2
    assert answers[0] == answers[2], "deterministic per model"
    assert answers[0] != answers[1], "different models answer differently"
