"""Model names to provider objects: ``"openai/gpt-4.1-mini"``, ``"ollama/llava"``,
``"replicate/yorickvp/llava-13b"``, ``"local"``, or an alias from the config."""

from __future__ import annotations

import os
from typing import Any

from ..config import Config, ProviderPreset, get_config
from ..errors import ConfigurationError
from .base import BaseVisionModel

_KINDS: dict[str, str] = {
    "openai": "vision.providers.openai:OpenAIModel",
    "replicate": "vision.providers.replicate:ReplicateModel",
    "local": "vision.providers.local:LocalModel",
}


def _class_for(kind: str) -> type[BaseVisionModel]:
    import importlib

    module, _, name = _KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def get_model(name: str | None = None, *, config: Config | None = None, **kwargs: Any) -> BaseVisionModel:
    """The model called ``name`` (default: ``settings.default_model``). Raises
    :class:`~vision.errors.UnknownModelError` for names that resolve to no provider."""
    config = config or get_config()
    preset, model_id = config.resolve_model(name)
    return _class_for(preset.kind)(preset, model_id, config=config, **kwargs)


def describe_providers(config: Config | None = None) -> list[dict[str, Any]]:
    """Every configured provider: kind, endpoint, key variable and whether it is set (never the key)."""
    config = config or get_config()
    out = []
    for name, p in sorted(config.providers.items()):
        out.append({
            "provider": name,
            "kind": p.kind,
            "base_url": p.resolved_base_url(),
            "key_env": p.key_env,
            "key_set": bool(p.api_key()) if p.key_env else None,
            "key_required": p.key_required(),
            "ready": (not p.key_required()) or bool(p.api_key()),
            "example": "local" if p.kind == "local" else f"{name}/<model>",
        })
    return out


def is_connected(preset: ProviderPreset) -> bool:
    """Whether this machine was pointed at the provider: its key is set, or its endpoint was given in the
    environment (a server on this machine or the test server), and nothing it needs is missing."""
    if preset.kind == "local":
        return True
    told = bool(preset.api_key()) or bool(preset.base_url_env and os.environ.get(preset.base_url_env))
    return told and (not preset.key_required() or bool(preset.api_key()))


def model_choices(config: Config | None = None) -> list[str]:
    """Model names worth offering in a picker: ``local`` first, then the default model and every alias
    whose provider is connected (:func:`is_connected`), each model once, in the config's order."""
    config = config or get_config()
    out, seen = ["local"], set()
    for name in [config.settings.default_model, *config.aliases]:
        try:
            preset, model_id = config.resolve_model(name)
        except ConfigurationError:
            continue
        if preset.kind != "local" and is_connected(preset) and (preset.name, model_id) not in seen:
            seen.add((preset.name, model_id))
            out.append(name)
    return out
