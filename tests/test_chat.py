"""Conversations: pinned images, follow-ups, instructions, presets, context budget, cache, history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vision import encode
from vision.chat import Conversation, ask
from vision.config import get_config, reload_config
from vision.errors import BudgetExceededError, ConfigurationError, ContextOverflowError, ProviderStatusError
from vision.history import History
from vision.providers import Options
from vision.testing import FakeServer


def chat_calls(fake: FakeServer) -> list:
    return fake.requests_for("openai", "/v1/chat/completions")


def test_follow_ups_reuse_the_pinned_image(api_env: FakeServer, photo_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    encodes = []
    real = encode.Frame.to_jpeg

    def counting(self, quality=85):  # type: ignore[no-untyped-def]
        encodes.append(self.size)
        return real(self, quality)

    monkeypatch.setattr(encode.Frame, "to_jpeg", counting)
    chat = Conversation(photo_path, model="openai/gpt-4.1-mini")
    first = chat.ask("What is this?")
    second = chat.ask("And what colour is it?")
    assert "And what colour" in second.text
    assert len(encodes) == 1, "the image is encoded once for the whole conversation"
    req1, req2 = chat_calls(api_env)
    assert req1.images[0].sha256 == req2.images[0].sha256
    assert len(req2.images) == 1, "pinned once, not re-attached to every turn"
    roles = [m["role"] for m in req2.json["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert req2.json["messages"][1]["content"] == first.text
    assert chat.usage.output_tokens == first.usage.output_tokens + second.usage.output_tokens


def test_custom_instructions_apply_to_every_ask(api_env: FakeServer, photo_path: Path) -> None:
    chat = Conversation(photo_path, model="openai/gpt-4.1-mini", system="Answer in French.")
    chat.ask("one")
    chat.ask("two")
    for req in chat_calls(api_env):
        assert req.json["messages"][0] == {"role": "system", "content": "Answer in French."}


@pytest.mark.parametrize("preset", ["identify", "label", "book"])
def test_presets_bring_question_instructions_and_detail(api_env: FakeServer, photo_path: Path, preset: str) -> None:
    p = get_config().preset(preset)
    chat = Conversation(photo_path, model="openai/gpt-4.1", preset=preset)
    answer = chat.ask()
    assert p.prompt in answer.text
    req = chat_calls(api_env)[-1]
    assert req.json["messages"][0]["content"].startswith(p.system[:30])
    detail = req.json["messages"][-1]["content"][0]["image_url"]["detail"]
    assert detail == "high"  # tile models always get an explicit detail
    expected_side = 768 if p.detail == "auto" else None
    if expected_side:
        assert max(req.images[0].width, req.images[0].height) <= expected_side
    if p.examples:
        assert req.json["messages"][1] == {"role": "user", "content": p.examples[0].user}


def test_user_preset_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_env: FakeServer,
                                 photo_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[presets.plants]\nprompt = "Which plant is this?"\nsystem = "You are a botanist."\n'
                   'detail = "high"\n')
    monkeypatch.setenv("VISION_CONFIG", str(cfg))
    reload_config()
    answer = ask(photo_path, model="openai/gpt-4.1-mini", preset="plants")
    assert "Which plant is this?" in answer.text  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError, match="unknown preset"):
        Conversation(photo_path, preset="nope")


def test_question_required_without_preset(photo_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a question"):
        Conversation(photo_path, model="local").ask()


def test_context_budget_drops_oldest_follow_ups(api_env: FakeServer, photo_path: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[models]]\nmatch = "tiny-*"\nrule = "anthropic"\ncontext_window = 2000\n')
    monkeypatch.setenv("VISION_CONFIG", str(cfg))
    reload_config()
    chat = Conversation(photo_path, model="openai/tiny-model", options=Options(max_output_tokens=200))
    chat.ask("first question " + "x" * 400)
    for i in range(6):
        chat.ask(f"follow-up {i} " + "y" * 400)
    assert chat.last_plan is not None and chat.last_plan.dropped_turns > 0
    last = chat_calls(api_env)[-1].json["messages"]
    assert last[0]["content"][0]["type"] == "image_url", "the pinned image is kept"
    assert "follow-up 5" in str(last[-1]["content"]), "the new question is kept"
    assert "follow-up 0" not in str(last), "the oldest follow-up was dropped"


def test_context_overflow_when_even_one_question_does_not_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              api_env: FakeServer, photo_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[models]]\nmatch = "tiny-*"\nrule = "anthropic"\ncontext_window = 300\n')
    monkeypatch.setenv("VISION_CONFIG", str(cfg))
    reload_config()
    with pytest.raises(ContextOverflowError):
        Conversation(photo_path, model="openai/tiny-model").ask("what?")
    assert not chat_calls(api_env)


def test_budget_cap_refuses_before_sending(api_env: FakeServer, photo_path: Path) -> None:
    with pytest.raises(BudgetExceededError):
        Conversation(photo_path, model="openai/gpt-4.1", budget_usd=0.000001).ask("q")
    assert not chat_calls(api_env)


def test_answer_cache_costs_once(api_env: FakeServer, photo_path: Path) -> None:
    a = ask(photo_path, "same question", model="openai/gpt-4.1-mini", cache=True)
    b = ask(photo_path, "same question", model="openai/gpt-4.1-mini", cache=True)
    c = ask(photo_path, "same question", model="openai/gpt-4.1-mini", cache=True, temperature=0.5)
    assert len(chat_calls(api_env)) == 2, "the repeat was served from the cache; other options were not"
    assert b.cached and not a.cached and not c.cached  # type: ignore[union-attr]
    assert b.text == a.text and b.usage.cost_usd == 0.0  # type: ignore[union-attr]


def test_history_logs_every_ask_without_the_key(api_env: FakeServer, photo_path: Path) -> None:
    chat = Conversation(photo_path, model="openai/gpt-4.1-mini")
    chat.ask("first")
    chat.ask("second")
    with pytest.raises(ProviderStatusError):
        Conversation(photo_path, model="openai/gpt-4.1-mini-error-500").ask("broken")
    history = History(get_config().history_path)
    entries = history.list()
    assert [e.prompt for e in entries] == ["broken", "second", "first"]
    assert entries[0].error and "500" in entries[0].error
    assert entries[1].conversation_id == entries[2].conversation_id
    assert entries[1].images == entries[2].images, "the image is stored once"
    img = history.image(entries[1].images[0])
    assert img is not None and img.data[:3] == b"\xff\xd8\xff"
    raw = get_config().history_path.read_bytes()
    for wal in get_config().history_path.parent.glob("*-wal"):
        raw += wal.read_bytes()
    assert b"sk-test-0123456789abcdef" not in raw
    with sqlite3.connect(get_config().history_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 1


def test_history_can_be_turned_off(api_env: FakeServer, photo_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_HISTORY", "0")
    reload_config()
    ask(photo_path, "q", model="openai/gpt-4.1-mini")
    assert not get_config().history_path.exists()


def test_stream_records_the_turn(api_env: FakeServer, photo_path: Path) -> None:
    chat = Conversation(photo_path, model="openai/gpt-4.1-mini")
    text = "".join(chat.stream("tell me"))
    assert "tell me" in text
    assert [m.role for m in chat.turns] == ["user", "assistant"]
    assert History(get_config().history_path).count() == 1


def test_reset_starts_a_new_chat(api_env: FakeServer, photo_path: Path) -> None:
    chat = Conversation(photo_path, model="openai/gpt-4.1-mini")
    chat.ask("one")
    old_id = chat.id
    chat.reset()
    chat.ask("two")
    assert chat.id != old_id
    assert [m["role"] for m in chat_calls(api_env)[-1].json["messages"]] == ["user"]


def test_local_engine_conversation(photo_path: Path) -> None:
    chat = Conversation(photo_path)  # default model: local
    answer = chat.ask("what colour is it?")
    assert answer.model == "local"
    assert "not a language model" in answer.text
    assert answer.usage.cost_usd == 0.0
    assert History(get_config().history_path).count() == 1
