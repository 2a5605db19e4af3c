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
    # caption-to-image bridge (vision.bridge): model names are settings, see generators.toml
    image_model: str = "replicate/black-forest-labs/flux-schnell"
    video_model: str = "replicate/kwaivgi/kling-v2.1"
    writer_model: str = "template"  # "template" (no key, deterministic) or a provider/model LLM
    output_dir: str = "outputs"
    generation_timeout: float = Field(900.0, gt=0)
    max_headlines: int = Field(12, ge=1, le=200)


class GeneratorInputs(_Strict):
    """The generator's own input names for each of the toolkit's parameters (absent: not supported)."""

    prompt: str = "prompt"
    negative_prompt: str | None = None
    aspect_ratio: str | None = None
    size: str | None = None  # one "WxH" string
    width: str | None = None
    height: str | None = None
    count: str | None = None
    seed: str | None = None
    output_format: str | None = None
    image: str | None = None  # the start frame of image-to-video
    duration: str | None = None
    rewriter: str | None = None  # the model's own prompt rewriter switch


class GeneratorFacts(_Strict):
    """What one image or video generator takes and costs; see ``vision/data/generators.toml``."""

    match: str
    provider: str | None = None
    kind: Literal["image", "video"] = "image"
    prompt_style: Literal["diffusion", "prose"] = "diffusion"
    max_prompt_chars: int = Field(1000, gt=0)
    inputs: GeneratorInputs = Field(default_factory=GeneratorInputs)
    rewriter_off: Any = False  # the value that switches the model's own rewriter off
    fixed: dict[str, Any] = Field(default_factory=dict)  # inputs always sent
    aspect_ratios: list[str] = Field(default_factory=list)
    sizes: dict[str, str] = Field(default_factory=dict)  # aspect ratio -> "WxH" for size-string models
    megapixels: float = 1.0  # for width/height models
    max_count: int = Field(1, ge=1)
    output_formats: list[str] = Field(default_factory=list)
    output_ext: str = "png"
    durations: list[int] = Field(default_factory=list)
    default_seconds: int | None = None
    needs_image: bool = False
    usd_per_image: float | None = None
    usd_per_second: float | None = None
    usd_per_run: float | None = None
    retired: str | None = None  # a message: the model is gone and what to use instead
    deprecated: str | None = None  # a message logged once when used

    def matches(self, provider: str, model: str) -> bool:
        if self.provider and self.provider != provider:
            return False
        base = model.split(":", 1)[0]
        return fnmatch.fnmatchcase(base.lower(), self.match.lower())


class StylePreset(_Strict):
    """A look for the prompt writer: style, lighting and composition words only, never objects."""

    name: str = ""
    description: str = ""
    style: str
    lighting: str = ""
    composition: str = ""
    motion: str = ""  # camera movement for video prompts
    negative: str = ""


class Config(_Strict):
    """Everything configurable, merged from defaults, the user file and the environment."""

    settings: Settings
    aliases: dict[str, str]
    providers: dict[str, ProviderPreset]
    models: list[ModelFacts]
    presets: dict[str, Preset]
    config_path: str | None = None
    generators: list[GeneratorFacts] = Field(default_factory=list)
    styles: dict[str, StylePreset] = Field(default_factory=dict)

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

    def generator_facts(self, provider: str, model: str) -> GeneratorFacts | None:
        """The generator table entry for ``provider/model``, or ``None`` when the table does not know it."""
        for facts in self.generators:
            if facts.matches(provider, model):
                return facts
        return None

    def style(self, name: str) -> StylePreset:
        try:
            return self.styles[name]
        except KeyError:
            known = ", ".join(sorted(self.styles))
            raise ConfigurationError(f"unknown style {name!r}; styles: {known} (or describe one in words)") from None

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
    "VISION_IMAGE_MODEL": "image_model",
    "VISION_VIDEO_MODEL": "video_model",
    "VISION_WRITER_MODEL": "writer_model",
    "VISION_OUTPUT_DIR": "output_dir",
    "VISION_GENERATION_TIMEOUT": "generation_timeout",
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
    generators_toml = _read_builtin("generators.toml")
    bridge = {"generators": generators_toml.get("generators", []), "styles": generators_toml.get("styles", {})}
    user_path = Path(path).expanduser() if path else default_config_path()
    user = _read_user(user_path)
    unknown = set(user) - {"settings", "aliases", "providers", "models", "presets", "generators", "styles"}
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
            generators=[GeneratorFacts(**g) for g in [*user.get("generators", []), *bridge["generators"]]],
            styles={k: StylePreset(name=k, **v) for k, v in {**bridge["styles"], **user.get("styles", {})}.items()},
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
