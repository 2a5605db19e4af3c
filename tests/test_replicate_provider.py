"""Replicate specifics: Prefer: wait, polling, timeouts that cancel, per-model input names."""

from __future__ import annotations

from pathlib import Path

import pytest

from vision.config import get_config, reload_config
from vision.errors import ProviderTimeoutError
from vision.frame import Frame
from vision.providers import Options, get_model
from vision.testing import FakeServer


@pytest.fixture
def image(photo_path: Path) -> Frame:
    return Frame.from_path(photo_path)


def test_create_asks_the_server_to_wait(api_env: FakeServer, image: Frame) -> None:
    get_model("replicate/yorickvp/llava-13b").ask("q", [image])
    create = api_env.requests_for("replicate")[0]
    assert create.path == "/v1/models/yorickvp/llava-13b/predictions"
    assert create.headers["prefer"] == "wait=20"  # the timeout (VISION_TIMEOUT=20 in tests), at most 60
    assert len(api_env.requests_for("replicate")) == 1, "answered within the wait: no polling"


def test_polls_when_the_prediction_outlasts_the_wait(api_env: FakeServer, image: Frame) -> None:
    api_env.prediction_seconds = 0.3
    model = get_model("replicate/yorickvp/llava-13b", wait=0)
    answer = model.ask("slow one", [image])
    assert "slow one" in answer.text
    polls = [r for r in api_env.requests_for("replicate") if r.method == "GET"]
    assert len(polls) >= 3
    assert "prefer" not in api_env.requests_for("replicate")[0].headers


def test_timeout_cancels_the_prediction(api_env: FakeServer, image: Frame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_TIMEOUT", "1")
    reload_config()
    api_env.prediction_seconds = 30
    with pytest.raises(ProviderTimeoutError, match="canceled"):
        get_model("replicate/yorickvp/llava-13b").ask("q", [image])
    assert any(r.path.endswith("/cancel") for r in api_env.requests), "a paid run is not left running"
    pred = next(iter(api_env.replicate_predictions.values()))  # type: ignore[attr-defined]
    assert pred.status == "canceled"


def test_versioned_model(api_env: FakeServer, image: Frame) -> None:
    version = "a" * 64
    answer = get_model(f"replicate/yorickvp/llava-13b:{version}").ask("versioned?", [image])
    assert "versioned?" in answer.text
    create = api_env.requests_for("replicate")[0]
    assert create.path == "/v1/predictions" and create.json["version"] == version


def test_input_names_come_from_the_model_table(api_env: FakeServer, image: Frame) -> None:
    get_model("replicate/lucataco/qwen2-vl-7b-instruct").ask("q", [image], system="Be brief.",
                                                             options=Options(max_output_tokens=64))
    body = api_env.requests_for("replicate")[0].json["input"]
    assert set(body) == {"media", "prompt", "max_new_tokens"}
    assert body["media"].startswith("data:image/jpeg;base64,")
    assert body["prompt"].startswith("Be brief."), "no system input: instructions go in the prompt"
    facts = get_config().facts("replicate", "lucataco/qwen2-vl-7b-instruct")
    assert facts.input_map["image"] == "media"


def test_follow_ups_are_sent_as_a_transcript(api_env: FakeServer, image: Frame) -> None:
    from vision.chat import Conversation

    chat = Conversation(image, model="replicate/yorickvp/llava-13b")
    first = chat.ask("What is it?")
    chat.ask("And its colour?")
    prompt = api_env.requests_for("replicate", "/v1/models/yorickvp/llava-13b/predictions")[-1].json["input"]["prompt"]
    assert prompt.startswith("User: What is it?\nAssistant: " + first.text)
    assert prompt.endswith("User: And its colour?\nAssistant:")


def test_streaming_failure_is_a_model_run_error(api_env: FakeServer, image: Frame) -> None:
    from vision.errors import ModelRunError

    api_env.prediction_seconds = 0.1
    with pytest.raises(ModelRunError, match="CUDA out of memory"):
        "".join(get_model("replicate/yorickvp/llava-13b-fail").stream("q", [image]))
