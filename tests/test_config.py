"""Settings: defaults, the user file, environment variables, names and aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from vision.config import get_config, is_loopback_url, load_config, reload_config
from vision.errors import ConfigurationError, UnknownModelError, redact
from vision.history import History, StoredImage
from vision.providers import Options, get_model


def test_defaults() -> None:
    config = get_config()
    assert config.settings.default_model == "local"
    assert get_model().name == "local"
    for name in ("openai", "ollama", "vllm", "llamacpp", "lmstudio", "openrouter", "gemini", "anthropic",
                 "replicate", "local"):
        assert name in config.providers
    assert config.providers["ollama"].base_url == "http://localhost:11434/v1"
    assert not config.providers["ollama"].key_required()
    assert config.providers["openai"].key_required()


def test_aliases_resolve() -> None:
    preset, model = get_config().resolve_model("mini")
    assert (preset.name, model) == ("openai", "gpt-4.1-mini")
    preset, model = get_config().resolve_model("replicate/yorickvp/llava-13b:abc")
    assert (preset.name, model) == ("replicate", "yorickvp/llava-13b:abc")


def test_user_file_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[settings]\ndefault_model = "mine"\ntimeout = 5\n'
        '[aliases]\nmine = "ollama/llava"\n'
        '[providers.ollama]\nbase_url = "http://gpu-box:11434/v1"\n'
        '[providers.mylab]\nkind = "openai"\nbase_url = "http://127.0.0.1:9999/v1"\n'
        '[[models]]\nmatch = "llava"\nprovider = "ollama"\nrule = "fixed"\ntokens = 999\nside = 500\n'
    )
    monkeypatch.setenv("VISION_CONFIG", str(cfg))
    monkeypatch.delenv("VISION_TIMEOUT")
    config = reload_config()
    assert config.settings.timeout == 5
    assert get_model().name == "ollama/llava"
    assert config.providers["ollama"].resolved_base_url() == "http://gpu-box:11434/v1"
    assert get_model("mylab/anything").provider == "mylab"
    assert config.facts("ollama", "llava").tokens == 999, "user entries are tried first"
    monkeypatch.setenv("VISION_MODEL", "local")
    monkeypatch.setenv("VISION_TIMEOUT", "7")
    config = reload_config()
    assert config.settings.default_model == "local" and config.settings.timeout == 7


@pytest.mark.parametrize("text", ["[settings]\ntimeout = -1\n", "[bogus]\nx = 1\n", "this is not toml ===",
                                  "[settings]\nunknown_key = 1\n"])
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISION_TIMEOUT")
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigurationError):
        load_config(cfg)


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="providers: anthropic, gemini"):
        get_model("acme/vision-1")


def test_options_parse() -> None:
    opts = Options.parse(["temperature=0.3", "max-tokens=50", "detail=high", "seed=3"])
    assert (opts.temperature, opts.max_output_tokens, opts.detail, opts.seed) == (0.3, 50, "high", 3)
    with pytest.raises(ValueError, match="temperature"):
        Options.parse(["temperature=9"])
    with pytest.raises(ValueError, match="not key=value"):
        Options.parse(["x"])
    with pytest.raises(ValueError, match="invalid model option"):
        Options.parse(["colour=blue"])


def test_loopback_detection() -> None:
    assert is_loopback_url("http://127.0.0.1:8000/v1") and is_loopback_url("http://localhost/v1")
    assert not is_loopback_url("https://api.openai.com/v1") and not is_loopback_url(None)


def test_redact_keys() -> None:
    text = "key sk-abcdefghijklmnop and r8_ABCDEFGH12345678 and Bearer abc.def-ghi123"
    out = redact(text, "mysecret")
    assert "sk-abc" not in out and "r8_ABC" not in out and "abc.def" not in out


def test_history_stores_images_once(tmp_path: Path) -> None:
    hist = History(tmp_path / "h.sqlite3")
    img = StoredImage("a" * 64, b"\xff\xd8\xffdata", "image/jpeg", 2, 2, "x.jpg")
    first = hist.log(model="m", prompt="p1", answer="a1", images=[img])
    hist.log(model="m", prompt="p2 with sk-abcdefghijklmnop", answer="a2", images=[img])
    assert hist.count() == 2
    assert hist.get(first[:6]).prompt == "p1"  # type: ignore[union-attr]
    assert "sk-abc" not in hist.list()[0].prompt
    assert hist.image("a" * 64).data == img.data  # type: ignore[union-attr]
    assert hist.list(search="p1")[0].id == first
    assert hist.clear() == 2 and hist.count() == 0
