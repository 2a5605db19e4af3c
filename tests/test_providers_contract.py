"""One contract, every provider: the real ``openai`` and ``replicate`` clients against
``vision.testing`` over a real socket, through the same cases."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from vision.config import reload_config
from vision.errors import (
    AuthenticationError,
    BadResponseError,
    MissingApiKeyError,
    ModelCapabilityError,
    ModelNotFoundError,
    ModelRunError,
    ProviderConnectionError,
    ProviderStatusError,
    ProviderTimeoutError,
    RateLimitError,
    RefusalError,
    UnknownModelError,
)
from vision.frame import Frame
from vision.providers import Options, get_model
from vision.testing import FakeServer

PROVIDERS = {
    "openai": "openai/gpt-4.1-mini",
    "ollama": "ollama/llava",
    "replicate": "replicate/yorickvp/llava-13b",
}


@pytest.fixture(params=list(PROVIDERS), ids=list(PROVIDERS))
def provider(request: pytest.FixtureRequest, api_env: FakeServer) -> str:
    return request.param


def model_for(provider: str, variant: str = "") -> str:
    name = PROVIDERS[provider]
    return name + variant if provider != "replicate" else name.replace("llava-13b", f"llava-13b{variant}")


def calls(fake: FakeServer) -> list:
    """Requests that created an answer (chat completions or predictions)."""
    return [r for r in fake.requests if r.path.endswith(("/chat/completions", "/predictions"))]


@pytest.fixture
def image(photo_path: Path) -> Frame:
    return Frame.from_path(photo_path)


def test_plain_answer_with_usage_and_cost(provider: str, api_env: FakeServer, image: Frame) -> None:
    model = get_model(model_for(provider))
    answer = model.ask("What is on the table?", [image])
    assert "What is on the table?" in answer.text
    assert answer.model == model.name
    assert answer.usage.output_tokens > 0
    assert answer.latency_ms > 0
    assert answer.plan is not None and answer.usage.image_tokens == answer.plan.image_tokens
    if provider == "ollama":
        assert answer.usage.cost_usd == 0.0  # a local server is free
    else:
        assert answer.usage.cost_usd is not None and answer.usage.cost_usd > 0


def test_streamed_answer(provider: str, api_env: FakeServer, image: Frame) -> None:
    model = get_model(model_for(provider))
    stream = model.stream("Describe it", [image])
    deltas = list(stream)
    assert len(deltas) > 3, "arrives in pieces"
    assert stream.answer is not None
    assert "".join(deltas) == stream.answer.text
    assert "Describe it" in stream.answer.text
    assert stream.answer.usage.output_tokens > 0


def test_image_arrives_as_jpeg_of_planned_size(provider: str, api_env: FakeServer, image: Frame) -> None:
    model = get_model(model_for(provider))
    answer = model.ask("What is this?", [image])
    received = calls(api_env)[-1].images
    assert len(received) == 1
    planned = answer.plan.images[0]  # type: ignore[union-attr]
    assert received[0].format == "JPEG"
    assert (received[0].width, received[0].height) == (planned.width, planned.height)
    assert received[0].sha256 == planned.sha256
    assert max(planned.width, planned.height) < max(image.size), "downsized before sending"


def test_retry_after_429_honours_retry_after(provider: str, api_env: FakeServer, image: Frame) -> None:
    api_env.fail_next(1, status=429, retry_after_ms=300)
    answer = get_model(model_for(provider)).ask("again?", [image])
    assert "again?" in answer.text
    made = calls(api_env)
    assert len(made) == 2
    assert made[1].received_at - made[0].received_at >= 0.28


def test_persistent_rate_limit_is_typed(provider: str, api_env: FakeServer, image: Frame) -> None:
    api_env.fail_next(10, status=429, retry_after_ms=5)
    with pytest.raises(RateLimitError) as info:
        get_model(model_for(provider)).ask("q", [image])
    assert info.value.status_code == 429
    assert len(calls(api_env)) == 3  # first try + max_retries=2


def test_server_error_is_retried(provider: str, api_env: FakeServer, image: Frame) -> None:
    api_env.fail_next(1, status=500)
    assert get_model(model_for(provider)).ask("q", [image]).text
    assert len(calls(api_env)) == 2


def test_auth_failure(provider: str, api_env: FakeServer, image: Frame) -> None:
    api_env.require_key = "the-right-key"
    with pytest.raises(AuthenticationError) as info:
        get_model(model_for(provider)).ask("q", [image])
    assert "the-right-key" not in str(info.value)


def test_unknown_model_at_the_provider(provider: str, api_env: FakeServer, image: Frame) -> None:
    with pytest.raises(ModelNotFoundError):
        get_model(model_for(provider, "-missing")).ask("q", [image])


def test_timeout(provider: str, api_env: FakeServer, image: Frame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_TIMEOUT", "1")
    monkeypatch.setenv("VISION_MAX_RETRIES", "0")
    reload_config()
    start = time.monotonic()
    with pytest.raises(ProviderTimeoutError):
        get_model(model_for(provider, "-slow-4")).ask("q", [image])
    assert time.monotonic() - start < 3.5


def test_empty_answer(provider: str, api_env: FakeServer, image: Frame) -> None:
    with pytest.raises(BadResponseError, match="empty"):
        get_model(model_for(provider, "-empty")).ask("q", [image])


def test_malformed_answer(provider: str, api_env: FakeServer, image: Frame) -> None:
    with pytest.raises(BadResponseError, match="malformed"):
        get_model(model_for(provider, "-malformed")).ask("q", [image])


def test_refusal(provider: str, api_env: FakeServer, image: Frame) -> None:
    if provider == "replicate":
        api_env.script(fault="fail", error="NSFW content detected in the input")
    else:
        api_env.script(fault="refuse")
    with pytest.raises(RefusalError):
        get_model(model_for(provider)).ask("q", [image])


def test_connection_refused(provider: str, monkeypatch: pytest.MonkeyPatch, image: Frame) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("OPENAI_BASE_URL", dead + "/v1")
    monkeypatch.setenv("OLLAMA_BASE_URL", dead + "/v1")
    monkeypatch.setenv("REPLICATE_BASE_URL", dead)
    monkeypatch.setenv("VISION_MAX_RETRIES", "0")
    reload_config()
    with pytest.raises(ProviderConnectionError):
        get_model(model_for(provider)).ask("q", [image])


def test_dropped_connection(provider: str, api_env: FakeServer, image: Frame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_MAX_RETRIES", "0")
    reload_config()
    with pytest.raises((ProviderConnectionError, BadResponseError)):
        get_model(model_for(provider, "-drop")).ask("q", [image])


def test_async_ask(provider: str, api_env: FakeServer, image: Frame) -> None:
    async def main() -> list[str]:
        model = get_model(model_for(provider))
        answers = await asyncio.gather(model.aask("one", [image]), model.aask("two", [image]))
        return [a.text for a in answers]

    one, two = asyncio.run(main())
    assert "one" in one and "two" in two


def test_model_options_reach_the_wire(provider: str, api_env: FakeServer, image: Frame) -> None:
    get_model(model_for(provider)).ask("q", [image], options=Options(temperature=0.2, max_output_tokens=77, seed=5))
    body = calls(api_env)[-1].json
    if provider == "replicate":
        assert body["input"]["temperature"] == 0.2
        assert body["input"]["max_tokens"] == 77
    else:
        assert body["temperature"] == 0.2
        assert body["seed"] == 5
        key = "max_completion_tokens" if provider == "openai" else "max_tokens"
        assert body[key] == 77


# --- configuration errors, before anything is sent ------------------------------------------------


@pytest.mark.parametrize(("name", "env_var"), [("openai/gpt-4.1-mini", "OPENAI_API_KEY"),
                                               ("replicate/yorickvp/llava-13b", "REPLICATE_API_TOKEN"),
                                               ("gemini/gemini-2.5-flash", "GEMINI_API_KEY")])
def test_missing_key_names_the_variable(name: str, env_var: str, image: Frame) -> None:
    with pytest.raises(MissingApiKeyError) as info:
        get_model(name).ask("q", [image])
    assert info.value.env_var == env_var and env_var in str(info.value)


def test_local_servers_need_no_key(api_env: FakeServer, monkeypatch: pytest.MonkeyPatch, image: Frame) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    reload_config()
    model = get_model("openai/gpt-4.1-mini")  # OPENAI_BASE_URL points at 127.0.0.1
    assert not model.needs_key
    assert model.ask("q", [image]).text


def test_model_without_vision(api_env: FakeServer, image: Frame) -> None:
    with pytest.raises(ModelCapabilityError, match="no vision"):
        get_model("openai/gpt-3.5-turbo").ask("q", [image])
    assert not calls(api_env), "refused before sending"


def test_vision_refused_by_server_is_a_status_error(api_env: FakeServer, image: Frame) -> None:
    with pytest.raises(ProviderStatusError, match="image_url"):
        get_model("ollama/some-novision-model").ask("q", [image])


def test_too_many_images(api_env: FakeServer, image: Frame) -> None:
    with pytest.raises(ModelCapabilityError, match="at most 1"):
        get_model("replicate/yorickvp/llava-13b").ask("q", [image, image])


@pytest.mark.parametrize("name", ["nope/model", "openai/", "replicate/just-a-name", ""])
def test_unknown_model_names(name: str) -> None:
    with pytest.raises(UnknownModelError):
        get_model(name).ask("q", []) if name else get_model("does-not-exist")


def test_failed_prediction_keeps_logs(api_env: FakeServer, image: Frame) -> None:
    with pytest.raises(ModelRunError) as info:
        get_model("replicate/yorickvp/llava-13b-fail").ask("q", [image])
    assert info.value.prediction_id
    assert "Loading model weights" in (info.value.logs or "")
