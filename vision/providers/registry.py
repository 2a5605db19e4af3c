"""Model names to provider objects: ``"openai/gpt-4.1-mini"``, ``"ollama/llava"``,
``"replicate/yorickvp/llava-13b"``, ``"local"``, or an alias from the config."""

from __future__ import annotations

from typing import Any

from ..config import Config, get_config
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
