"""OpenAI and every OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter, and
Gemini's and Anthropic's compatibility endpoints), through the official ``openai`` client.

A compatible server is the same provider with another ``base_url`` (a preset in the config), not a
new client. The client retries 408/409/429/5xx and connection errors itself, honouring
``retry-after-ms`` and ``Retry-After``; we set its ``max_retries`` and ``timeout`` from the settings.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from typing import Any

from ..encode import RequestPlan
from ..errors import (
    AuthenticationError,
    BadResponseError,
    MissingApiKeyError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderStatusError,
    ProviderTimeoutError,
    RateLimitError,
    RefusalError,
)
from .base import Answer, BaseVisionModel, Message, Options, Usage
from .clients import shared_client

log = logging.getLogger(__name__)

NO_KEY_PLACEHOLDER = "no-key-needed"  # the client insists on a string; local servers ignore it


class OpenAIModel(BaseVisionModel):
    """``openai/<model>`` and the OpenAI-compatible presets (``ollama/<model>``, ``gemini/<model>``, ...)."""

    provider_kind = "openai"
    can_stream = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.supports_json_schema = self.preset.json_schema

    # -- clients --------------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        key = self.preset.api_key()
        if not key:
            if self.needs_key:
                raise MissingApiKeyError(self.provider, self.key_env_var or "OPENAI_API_KEY")
            key = NO_KEY_PLACEHOLDER
        s = self.config.settings
        return {
            "api_key": key,
            "base_url": self.preset.resolved_base_url(),
            "max_retries": s.max_retries,
            "timeout": s.timeout,
        }

    def load_client(self) -> None:
        import openai  # noqa: F401

    def client(self) -> Any:
        """The shared sync client for this endpoint and key."""
        import openai

        kwargs = self._client_kwargs()
        key = ("openai", *sorted(kwargs.items()))
        return shared_client(key, lambda: openai.OpenAI(**kwargs), lambda c: c.close())

    def aclient(self) -> Any:
        """A new async client; async clients belong to one event loop, so the caller closes it."""
        import openai

        tls = _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        return openai.AsyncOpenAI(**self._client_kwargs(), http_client=openai.DefaultAsyncHttpxClient(verify=tls))

    # -- request --------------------------------------------------------------------------------

    def build_request(self, messages: list[Message], plan: RequestPlan, options: Options) -> dict[str, Any]:
        """The exact keyword arguments for ``chat.completions.create`` (also shown by ``--dry-run``)."""
        wire: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "user" and m.images:
                content: Any = []
                for part in m.images:
                    enc = self.encode(part)
                    image_url: dict[str, Any] = {"url": enc.data_url}
                    if enc.detail:
                        image_url["detail"] = enc.detail
                    content.append({"type": "image_url", "image_url": image_url})
                content.append({"type": "text", "text": m.text})
            else:
                content = m.text
            wire.append({"role": m.role, "content": content})
        req: dict[str, Any] = {"model": self.model_id, "messages": wire,
                               self.preset.max_tokens_param: plan.max_output_tokens}
        if options.temperature is not None:
            if self.facts.reasoning:
                log.warning("%s is a reasoning model and ignores temperature; not sent", self.name)
            else:
                req["temperature"] = options.temperature
        if options.reasoning_effort is not None:
            if self.facts.reasoning:
                req["reasoning_effort"] = options.reasoning_effort
            else:
                log.warning("%s is not a reasoning model; reasoning_effort not sent", self.name)
        if options.seed is not None:
            req["seed"] = options.seed
        if options.json_schema is not None:
            if self.supports_json_schema:
                req["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": options.json_schema, "strict": False},
                }
            else:
                req["response_format"] = {"type": "json_object"}
        if options.timeout is not None:
            req["timeout"] = options.timeout
        return req

    # -- calls ----------------------------------------------------------------------------------

    def _complete(self, messages: list[Message], plan: RequestPlan, options: Options) -> Answer:
        req = self.build_request(messages, plan, options)
        client = self.client()
        try:
            completion = client.chat.completions.create(**req)
        except Exception as exc:
            raise self._map_error(exc) from exc
        return self._parse(completion)

    async def _acomplete(self, messages: list[Message], plan: RequestPlan, options: Options) -> Answer:
        req = self.build_request(messages, plan, options)
        async with self.aclient() as client:
            try:
                completion = await client.chat.completions.create(**req)
            except Exception as exc:
                raise self._map_error(exc) from exc
        return self._parse(completion)

    def _stream(self, messages: list[Message], plan: RequestPlan, options: Options,
                final: dict[str, Answer]) -> Iterator[str]:
        req = self.build_request(messages, plan, options)
        req["stream"] = True
        if self.preset.stream_usage:
            req["stream_options"] = {"include_usage": True}
        usage = Usage()
        finish_reason = None
        refusal: list[str] = []
        model = self.name
        got_text = False
        client = self.client()
        try:
            stream = client.chat.completions.create(**req)
            for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = _usage(chunk.usage)
                for choice in chunk.choices or []:
                    delta = choice.delta
                    if getattr(delta, "refusal", None):
                        refusal.append(delta.refusal)
                    if delta.content:
                        got_text = True
                        yield delta.content
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
        except ProviderError:
            raise
        except Exception as exc:
            raise self._map_error(exc) from exc
        if refusal or finish_reason == "content_filter":
            raise RefusalError("the model refused", reason="".join(refusal) or finish_reason,
                               provider=self.provider, model=self.model_id)
        if not got_text:
            raise BadResponseError("the stream ended without any answer text", provider=self.provider,
                                   model=self.model_id)
        final["answer"] = Answer(text="", model=model, usage=usage, finish_reason=finish_reason)

    # -- parsing and errors ---------------------------------------------------------------------

    def _parse(self, completion: Any) -> Answer:
        try:
            choice = completion.choices[0]
            message = choice.message
            text = message.content
            refusal = getattr(message, "refusal", None)
            finish_reason = choice.finish_reason
        except (AttributeError, IndexError, TypeError) as exc:
            raise BadResponseError("malformed response: no choices/message in the body", provider=self.provider,
                                   model=self.model_id) from exc
        if refusal or finish_reason == "content_filter":
            raise RefusalError(f"the model refused: {refusal or finish_reason}", reason=refusal or finish_reason,
                               provider=self.provider, model=self.model_id)
        if not isinstance(text, str) or not text.strip():
            raise BadResponseError("the model returned an empty answer", provider=self.provider, model=self.model_id)
        raw = completion.model_dump() if hasattr(completion, "model_dump") else completion
        return Answer(
            text=text,
            model=self.name,
            usage=_usage(getattr(completion, "usage", None)),
            raw=raw,
            finish_reason=finish_reason,
            request_id=getattr(completion, "_request_id", None),
        )

    def _map_error(self, exc: Exception) -> ProviderError:
        import openai

        kw: dict[str, Any] = {"provider": self.provider, "model": self.model_id}
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, openai.APITimeoutError):
            return ProviderTimeoutError(f"no answer within {self.config.settings.timeout:g} s", **kw)
        if isinstance(exc, openai.APIConnectionError):
            where = self.preset.resolved_base_url()
            return ProviderConnectionError(f"cannot connect to {where} ({exc.message})", **kw)
        if isinstance(exc, openai.APIStatusError):
            kw.update(status_code=exc.status_code, request_id=exc.request_id, body=exc.body)
            detail = _error_text(exc.body) or exc.message
            if isinstance(exc, openai.AuthenticationError):
                return AuthenticationError(f"the API key was rejected: {detail}", **kw)
            if isinstance(exc, openai.RateLimitError):
                return RateLimitError(f"rate limited after {self.config.settings.max_retries} retries: {detail}",
                                      retry_after=_retry_after(exc), **kw)
            if isinstance(exc, openai.NotFoundError):
                return ModelNotFoundError(f"not found (is the model name right?): {detail}", **kw)
            if exc.status_code == 400 and _looks_like_policy(detail):
                return RefusalError(f"refused by the content policy: {detail}", reason=detail, **kw)
            return ProviderStatusError(detail, **kw)
        if isinstance(exc, openai.APIResponseValidationError):
            return BadResponseError(f"malformed response: {exc.message}", **kw)
        if isinstance(exc, (openai.OpenAIError, ValueError)):
            return BadResponseError(f"malformed response: {exc}", **kw)
        name = type(exc).__name__
        if "Timeout" in name:
            return ProviderTimeoutError(f"timed out ({name})", **kw)
        if any(s in name for s in ("Protocol", "Connect", "Read", "Network", "Stream")):
            return ProviderConnectionError(f"connection dropped ({name}: {exc})", **kw)
        return BadResponseError(f"unexpected failure ({name}: {exc})", **kw)


@functools.lru_cache(maxsize=4)
def _tls_context(cert_file: str | None, cert_dir: str | None) -> Any:
    """The TLS context the client builds by default, built once per CA setting: loading the CA bundle
    takes about 35 ms of CPU, which every new async client would otherwise spend on the event loop's
    thread, so concurrent requests (the council) would go out that much later each."""
    import httpx2

    return httpx2.create_ssl_context()


def _usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    details = getattr(u, "completion_tokens_details", None)
    prompt_details = getattr(u, "prompt_tokens_details", None)
    return Usage(
        input_tokens=int(getattr(u, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(u, "completion_tokens", 0) or 0),
        reasoning_tokens=int(getattr(details, "reasoning_tokens", 0) or 0) if details else 0,
        cached_tokens=int(getattr(prompt_details, "cached_tokens", 0) or 0) if prompt_details else 0,
    )


def _error_text(body: Any) -> str | None:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or "") or None
        return str(err)
    return None


def _retry_after(exc: Any) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", {}) or {}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        try:
            return float(value) / divisor if value is not None else None
        except ValueError:
            continue
    return None


def _looks_like_policy(text: str) -> bool:
    t = text.lower()
    return any(s in t for s in ("content policy", "content_policy", "safety system", "moderation", "flagged"))
