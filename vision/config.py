"""Settings in one place: built-in defaults, the user's config file, environment variables.

Precedence, lowest first: ``vision/data/*.toml`` (shipped), the user config file
(``$VISION_CONFIG`` or ``<user config dir>/config.toml``), then ``VISION_*`` environment variables.
Model facts (token rules, prices, capabilities) and presets are data in the same files, so users can
add models and presets without touching code.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigurationError, UnknownModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

log = logging.getLogger(__name__)

APP_NAME = "vision-toolkit"
Detail = Literal["low", "auto", "high"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderPreset(_Strict):
    """How to reach one provider: which client, where, and which key."""

    name: str = ""
    kind: Literal["openai", "replicate", "local"]
    base_url: str | None = None
    base_url_env: str | None = None
    key_env: str | None = None
    needs_key: bool = False
    free: bool = False
    max_tokens_param: str = "max_completion_tokens"
    stream_usage: bool = True
    json_schema: bool = True

    def resolved_base_url(self) -> str | None:
        if self.base_url_env and os.environ.get(self.base_url_env):
            return os.environ[self.base_url_env]
        return self.base_url

    def api_key(self) -> str | None:
        return os.environ.get(self.key_env) if self.key_env else None

    def key_required(self) -> bool:
        """A key is required unless the endpoint is on this machine (a local server or the test server)."""
        return self.needs_key and not is_loopback_url(self.resolved_base_url())


class ModelFacts(_Strict):
    """What one model can do and what it costs; see ``vision/data/models.toml``."""

    match: str
    provider: str | None = None
    vision: bool = True
    rule: Literal["openai-tile", "openai-patch", "anthropic", "gemini", "qwen", "fixed", "unknown"] = "unknown"
    base_tokens: int = 85
    tile_tokens: int = 170
    multiplier: float = 1.0
    patch: int = 28
    max_pixels: int = 1_003_520
    tokens: int = 576
    side: int = 336
    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None
    usd_per_second: float | None = None
    context_window: int = 32_768
    max_images: int = 16
    reasoning: bool = False
    input_map: dict[str, str] = Field(default_factory=dict)

    def matches(self, provider: str, model: str) -> bool:
        if self.provider and self.provider != provider:
            return False
        base = model.split(":", 1)[0]
        leaf = base.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(name.lower(), self.match.lower()) for name in (base, leaf))


class FewShot(_Strict):
    user: str
    assistant: str


class Preset(_Strict):
    """Instructions, a default question and few-shot examples, applied to a conversation."""

    name: str = ""
    description: str = ""
    prompt: str = ""
    system: str = ""
    detail: Detail = "auto"
    examples: list[FewShot] = Field(default_factory=list)


class Settings(_Strict):
    default_model: str = "local"
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    history: bool = True
    cache: bool = False
    auto_long_edge: int = Field(768, ge=64, le=4096)
    jpeg_quality: int = Field(85, ge=30, le=100)
    max_image_pixels: int = Field(64_000_000, gt=0)
    max_image_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_aspect_ratio: float = Field(50.0, ge=1)
    min_image_side: int = Field(8, ge=1)
    url_max_bytes: int = Field(20 * 1024 * 1024, gt=0)
    url_timeout: float = Field(10.0, gt=0)
    max_output_tokens: int = Field(1024, gt=0)
    data_dir: str | None = None
    budget_usd: float | None = None


class Config(_Strict):
    """Everything configurable, merged from defaults, the user file and the environment."""

    settings: Settings
    aliases: dict[str, str]
    providers: dict[str, ProviderPreset]
    models: list[ModelFacts]
    presets: dict[str, Preset]
    config_path: str | None = None

    # -- lookups --------------------------------------------------------------------------------

    def resolve_model(self, name: str | None) -> tuple[ProviderPreset, str]:
        """``"provider/model"`` (or an alias, or ``local``) to its provider preset and model id."""
        name = (name or self.settings.default_model).strip()
        if not name:
            raise UnknownModelError(name, "empty model name")
        seen = set()
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        provider, _, model = name.partition("/")
        if provider == "local" and not model:
            return self.providers["local"], "local"
        if provider not in self.providers:
            known = ", ".join(sorted(self.providers))
            raise UnknownModelError(
                name, f"no provider {provider!r} (models are named provider/model; providers: {known})"
            )
        if not model:
            raise UnknownModelError(name, f"missing the model after '{provider}/'")
        return self.providers[provider], model

    def facts(self, provider: str, model: str) -> ModelFacts:
        for facts in self.models:
            if facts.matches(provider, model):
                return facts
        return ModelFacts(match="*")

    def preset(self, name: str) -> Preset:
        try:
            return self.presets[name]
        except KeyError:
            known = ", ".join(sorted(self.presets))
            raise ConfigurationError(f"unknown preset {name!r}; presets: {known}") from None

    # -- paths ----------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir) if self.settings.data_dir else default_data_dir()

    @property
    def history_path(self) -> Path:
        return self.data_dir / "history.sqlite3"

    @property
    def cache_path(self) -> Path:
        return self.data_dir / "cache.sqlite3"


def is_loopback_url(url: str | None) -> bool:
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    return host in {"localhost", "::1"} or host.startswith("127.")


def default_config_path() -> Path:
    if os.environ.get("VISION_CONFIG"):
        return Path(os.environ["VISION_CONFIG"]).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME)) / "config.toml"


def default_data_dir() -> Path:
    if os.environ.get("VISION_DATA_DIR"):
        return Path(os.environ["VISION_DATA_DIR"]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME))


def _read_builtin(name: str) -> dict[str, Any]:
    text = resources.files("vision.data").joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text)


def _read_user(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc}") from exc


_ENV_SETTINGS = {
    "VISION_MODEL": "default_model",
    "VISION_TIMEOUT": "timeout",
    "VISION_MAX_RETRIES": "max_retries",
    "VISION_HISTORY": "history",
    "VISION_CACHE": "cache",
    "VISION_DATA_DIR": "data_dir",
    "VISION_BUDGET_USD": "budget_usd",
}


def _env_settings() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for env, key in _ENV_SETTINGS.items():
        value = os.environ.get(env)
        if value is None or value == "":
            continue
        if key in {"history", "cache"}:
            out[key] = value.strip().lower() not in {"0", "false", "no", "off"}
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None) -> Config:
    """Build the merged :class:`Config`; ``path`` overrides the user config file location."""
    defaults = _read_builtin("defaults.toml")
    builtin_models = _read_builtin("models.toml").get("models", [])
    builtin_presets = _read_builtin("presets.toml").get("presets", {})
    user_path = Path(path).expanduser() if path else default_config_path()
    user = _read_user(user_path)
    unknown = set(user) - {"settings", "aliases", "providers", "models", "presets"}
    if unknown:
        raise ConfigurationError(f"{user_path}: unknown section(s) {', '.join(sorted(unknown))}")

    providers: dict[str, dict[str, Any]] = {k: dict(v) for k, v in defaults["providers"].items()}
    for name, override in user.get("providers", {}).items():
        providers[name] = {**providers.get(name, {}), **override}
    presets: dict[str, dict[str, Any]] = {k: dict(v) for k, v in builtin_presets.items()}
    for name, override in user.get("presets", {}).items():
        presets[name] = {**presets.get(name, {}), **override}
    try:
        return Config(
            settings=Settings(**{**defaults["settings"], **user.get("settings", {}), **_env_settings()}),
            aliases={**defaults.get("aliases", {}), **user.get("aliases", {})},
            providers={k: ProviderPreset(name=k, **v) for k, v in providers.items()},
            models=[ModelFacts(**m) for m in [*user.get("models", []), *builtin_models]],
            presets={k: Preset(name=k, **v) for k, v in presets.items()},
            config_path=str(user_path),
        )
    except (ValidationError, TypeError) as exc:
        raise ConfigurationError(f"invalid configuration ({user_path} or VISION_* variables): {exc}") from exc


@lru_cache(maxsize=1)
def _cached_config() -> Config:
    return load_config()


def get_config() -> Config:
    """The process-wide configuration (loaded once; call :func:`reload_config` after changes)."""
    return _cached_config()


def reload_config() -> Config:
    _cached_config.cache_clear()
    return _cached_config()
