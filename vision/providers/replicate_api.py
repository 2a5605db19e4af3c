"""The Replicate client as the toolkit uses it: built once per key and URL, creates retried by us.

replicate-python's transport retries GETs but never a POST, so a 429 or 5xx on creating a
prediction would fail the call: :func:`create_prediction` retries those itself, honouring
``Retry-After``. Shared by the vision provider and the image/video generators.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from ..config import Config, ProviderPreset
from ..errors import (
    AuthenticationError,
    BadResponseError,
    MissingApiKeyError,
    ModelNotFoundError,
    ModelRunError,
    ProviderConnectionError,
    ProviderError,
    ProviderStatusError,
    ProviderTimeoutError,
    RateLimitError,
    RefusalError,
)
from .clients import shared_client

log = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
NO_KEY_PLACEHOLDER = "no-key-needed"
_POLICY_WORDS = ("nsfw", "content policy", "safety", "flagged", "sensitive")


class ReplicateAPI:
    """A configured ``replicate.Client`` plus the retry and error rules of the toolkit."""

    def __init__(self, preset: ProviderPreset, config: Config, *, poll_interval: float | None = None) -> None:
        import httpx
        import replicate

        key = preset.api_key()
        if not key:
            if preset.key_required():
                raise MissingApiKeyError(preset.name, preset.key_env or "REPLICATE_API_TOKEN")
            key = NO_KEY_PLACEHOLDER
        self.preset = preset
        self.settings = config.settings
        timeout = self.settings.timeout
        base_url = preset.resolved_base_url()

        def build() -> Any:
            client = replicate.Client(
                api_token=key, base_url=base_url,
                timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
                event_hooks={"response": [_remember_retry_after]},
            )
            _ = client._client  # built lazily and unlocked inside replicate: build it once, here, under our lock
            return client

        self.client = shared_client(("replicate", key, base_url, timeout), build, _close_replicate)
        self.poll_interval = poll_interval if poll_interval is not None else self.client.poll_interval

    # -- calls ----------------------------------------------------------------------------------

    def create_prediction(self, ref: str, input: dict[str, Any], *, model_label: str, wait: int | bool = False,
                          stream: bool = False) -> Any:
        """Create a prediction for ``owner/name`` or ``owner/name:version``, retrying 429/5xx."""
        owner_name, _, version = ref.partition(":")
        params: dict[str, Any] = {"input": input}
        if wait:
            params["wait"] = wait
        if stream:
            params["stream"] = True

        def create() -> Any:
            if version:
                return self.client.predictions.create(version=version, **params)
            return self.client.models.predictions.create(model=owner_name, **params)

        return self.call(create, model_label=model_label, retry_post=True)

    def call(self, fn: Callable[[], Any], *, model_label: str, retry_post: bool = False) -> Any:
        """Run ``fn`` mapping errors to the toolkit's; with ``retry_post``, retry 429/5xx/connection."""
        attempts = 1 + (self.settings.max_retries if retry_post else 0)
        for attempt in range(attempts):
            _RETRY_AFTER.value = None
            try:
                return fn()
            except Exception as exc:
                mapped = map_replicate_error(exc, provider=self.preset.name, model=model_label,
                                             retry_after=getattr(_RETRY_AFTER, "value", None))
                retryable = isinstance(mapped, (RateLimitError, ProviderConnectionError)) or (
                    isinstance(mapped, ProviderStatusError) and (mapped.status_code or 0) >= 500
                )
                if not retryable or attempt == attempts - 1:
                    raise mapped from exc
                delay = _backoff(attempt, getattr(mapped, "retry_after", None))
                log.info("%s: %s; retrying in %.2f s (%d/%d)", model_label, mapped, delay, attempt + 1, attempts - 1)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def wait(self, prediction: Any, *, model_label: str, timeout: float,
             on_update: Callable[[Any], None] | None = None) -> Any:
        """Poll until the prediction ends; past ``timeout`` cancel it and raise a timeout error."""
        deadline = time.monotonic() + timeout
        while prediction.status not in TERMINAL:
            if time.monotonic() > deadline:
                try:
                    self.call(prediction.cancel, model_label=model_label)
                except ProviderError as exc:
                    log.warning("could not cancel prediction %s: %s", prediction.id, exc)
                raise ProviderTimeoutError(
                    f"prediction {prediction.id} did not finish within {timeout:g} s (canceled)",
                    provider=self.preset.name, model=model_label,
                )
            time.sleep(self.poll_interval)
            self.call(prediction.reload, model_label=model_label)
            if on_update:
                on_update(prediction)
        return prediction

    def raise_for_failure(self, prediction: Any, *, model_label: str) -> None:
        if prediction.status != "succeeded":
            raise self.failure(prediction, str(prediction.error or prediction.status), model_label=model_label)

    def failure(self, prediction: Any, error: str, *, model_label: str) -> ProviderError:
        """The error for a prediction that failed: a refusal when the reason is a content policy."""
        kw = {"provider": self.preset.name, "model": model_label}
        if any(w in error.lower() for w in _POLICY_WORDS):
            return RefusalError(f"prediction {prediction.id} refused: {error}", reason=error, **kw)
        return ModelRunError(f"prediction {prediction.id} {prediction.status}: {error}",
                             prediction_id=prediction.id, logs=prediction.logs, **kw)


_RETRY_AFTER = threading.local()  # the Retry-After of the last response seen on this thread


def _remember_retry_after(response: Any) -> None:
    _RETRY_AFTER.value = _parse_retry_after(response.headers)


def _close_replicate(client: Any) -> None:
    for attr in ("_Client__client", "_Client__async_client"):
        http = getattr(client, attr, None)
        if http is not None and hasattr(http, "close"):
            http.close()


def _parse_retry_after(headers: Any) -> float | None:
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            continue
    return None


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None and 0 <= retry_after <= 60:
        return retry_after
    return min(8.0, 0.5 * 2**attempt) * (1 - 0.25 * random.random())


def map_replicate_error(exc: Exception, *, provider: str, model: str,
                        retry_after: float | None = None) -> ProviderError:
    """Turn replicate/httpx exceptions into the toolkit's :class:`ProviderError` family."""
    import httpx
    from replicate.exceptions import ModelError, ReplicateError

    kw: dict[str, Any] = {"provider": provider, "model": model}
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ReplicateError):
        status = exc.status
        detail = exc.detail or exc.title or "error"
        kw.update(status_code=status, body=exc.to_dict())
        if status == 401:
            return AuthenticationError(f"the API token was rejected: {detail}", **kw)
        if status == 404:
            return ModelNotFoundError(f"not found (is the model name right?): {detail}", **kw)
        if status == 429:
            return RateLimitError(f"rate limited: {detail}", retry_after=retry_after, **kw)
        return ProviderStatusError(detail, **kw)
    if isinstance(exc, ModelError):
        pred = exc.prediction
        return ModelRunError(f"prediction {pred.id} failed: {pred.error}", prediction_id=pred.id, logs=pred.logs, **kw)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeoutError("no answer in time", **kw)
    if isinstance(exc, httpx.TransportError):
        return ProviderConnectionError(f"cannot reach the server ({type(exc).__name__}: {exc})", **kw)
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return BadResponseError(f"malformed response ({type(exc).__name__}: {exc})", **kw)
    return ProviderError(f"unexpected failure ({type(exc).__name__}: {exc})", **kw)
