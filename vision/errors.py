"""The whole exception hierarchy of vision-toolkit.

Every error carries its context as attributes and is raised ``from`` its cause. The CLI turns any
:class:`VisionError` into one line on stderr and a non-zero exit code; the apps show it as a message.
``ValueError`` is used only for argument validation in the library API.

Messages never contain API keys: providers build them from status codes, request ids and the
server's own error text, and :func:`redact` scrubs anything that looks like a key.
"""

from __future__ import annotations

import re
from typing import Any

_KEY_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|r8_[A-Za-z0-9]{8,}|AIza[0-9A-Za-z_\-]{20,}|Bearer\s+[A-Za-z0-9._\-]{8,})"
)


def redact(text: str, *secrets: str | None) -> str:
    """Remove the given secrets and anything shaped like a provider key from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_PATTERNS.sub("***", text)


class VisionError(Exception):
    """Base class of every error vision-toolkit raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))
        self.message = redact(message)

    def __str__(self) -> str:
        return self.message


# --- configuration -----------------------------------------------------------------------------


class ConfigurationError(VisionError):
    """The settings, config file, model name or installed extras do not allow the request."""

    exit_code = 2


class MissingApiKeyError(ConfigurationError):
    """A provider needs a key and its environment variable is not set."""

    def __init__(self, provider: str, env_var: str) -> None:
        self.provider = provider
        self.env_var = env_var
        super().__init__(
            f"{provider} needs an API key: set {env_var} (for example `export {env_var}=...`), "
            f"or use --model local, which needs no key"
        )


class MissingExtraError(ConfigurationError):
    """An optional part is used but its packages are not installed."""

    def __init__(self, extra: str, feature: str, package: str | None = None) -> None:
        self.extra = extra
        self.feature = feature
        self.package = package
        what = f" ({package} is not installed)" if package else ""
        super().__init__(
            f"{feature} needs the '{extra}' extra{what}: pip install 'vision-toolkit[{extra}]'"
        )


class UnknownModelError(ConfigurationError):
    """The model name does not resolve to a provider, alias or preset."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(f"unknown model {model!r}: {reason}")


class ModelCapabilityError(ConfigurationError):
    """The model exists but cannot do what was asked (no vision, too many images, ...)."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(f"{model} cannot be used here: {reason}")


class ContextOverflowError(ConfigurationError):
    """The request does not fit the model's context window even after dropping old turns."""

    def __init__(self, model: str, needed_tokens: int, budget_tokens: int) -> None:
        self.model = model
        self.needed_tokens = needed_tokens
        self.budget_tokens = budget_tokens
        super().__init__(
            f"the request needs about {needed_tokens} tokens but {model} has room for {budget_tokens}: "
            "use fewer or smaller images, or start a new chat"
        )


class BudgetExceededError(ConfigurationError):
    """The estimated cost of a request is over the budget cap the user set."""

    def __init__(self, estimated_usd: float, budget_usd: float) -> None:
        self.estimated_usd = estimated_usd
        self.budget_usd = budget_usd
        super().__init__(
            f"estimated cost ${estimated_usd:.4f} is over the budget of ${budget_usd:.4f}; "
            "raise the budget or choose a cheaper model"
        )


# --- images ------------------------------------------------------------------------------------


class ImageError(VisionError):
    """An image could not be read: unreadable, too large, unsupported or unreachable."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + message)


class UnsupportedImageError(ImageError):
    """The bytes are not an image in a supported format."""


class ImageTooLargeError(ImageError):
    """The image is over the byte, pixel or aspect-ratio limits."""


class ImageDownloadError(ImageError):
    """An image URL could not be fetched (scheme, timeout, status, size, content type)."""


# --- capture and OCR ---------------------------------------------------------------------------


class CameraError(VisionError):
    """A camera, stream or video source could not be opened or read."""

    def __init__(self, message: str, *, source: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


class OcrError(VisionError):
    """An OCR engine is missing or failed."""

    def __init__(self, message: str, *, engine: str | None = None) -> None:
        self.engine = engine
        super().__init__(f"{engine}: {message}" if engine else message)


class DocumentError(VisionError):
    """A document (PDF, receipt, label) could not be read or parsed."""


# --- batches -----------------------------------------------------------------------------------


class BatchError(VisionError):
    """A batch cannot start or go on: its output belongs to another task, the cluster is unreachable, ..."""


class BudgetReachedError(BatchError):
    """A batch's total budget is used up (or cannot be kept): no new ask is sent."""

    def __init__(self, reason: str, *, budget_usd: float | None = None) -> None:
        self.reason = reason
        self.budget_usd = budget_usd
        super().__init__(f"not asked: {reason}")


# --- providers ---------------------------------------------------------------------------------


class ProviderError(VisionError):
    """A model provider failed to answer."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status_code: int | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        detail = f" (HTTP {status_code})" if status_code else ""
        rid = f" [request {request_id}]" if request_id else ""
        super().__init__(f"{provider}/{model}: {message}{detail}{rid}")


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within the timeout."""


class ProviderConnectionError(ProviderError):
    """The provider could not be reached."""


class AuthenticationError(ProviderError):
    """The provider rejected the API key."""


class RateLimitError(ProviderError):
    """The provider is rate limiting this key; ``retry_after`` is in seconds when known."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ProviderStatusError(ProviderError):
    """The provider answered with an HTTP error status."""


class ModelNotFoundError(ProviderStatusError):
    """The provider does not know the model."""


class RefusalError(ProviderError):
    """The model or the provider's content policy refused the request."""

    def __init__(self, message: str, *, reason: str | None = None, **kw: Any) -> None:
        self.reason = reason
        super().__init__(message, **kw)


class BadResponseError(ProviderError):
    """The provider's answer was empty, malformed or not what the protocol promises."""


class ModelRunError(ProviderError):
    """A hosted model ran and failed (a Replicate prediction that ended ``failed`` or ``canceled``)."""

    def __init__(self, message: str, *, prediction_id: str | None = None, logs: str | None = None,
                 **kw: Any) -> None:
        self.prediction_id = prediction_id
        self.logs = logs
        super().__init__(message, **kw)


class CouncilError(VisionError):
    """No member of a council answered: every one failed or timed out.

    ``failures`` maps each member (``provider/model``) to why it gave no answer.
    """

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = dict(failures)
        detail = "; ".join(f"{member}: {why}" for member, why in self.failures.items())
        super().__init__(f"no council member answered ({detail})")


# --- generation --------------------------------------------------------------------------------


class GenerationError(VisionError):
    """An image or video generation job failed."""

    def __init__(self, message: str, *, job_id: str | None = None, logs: str | None = None) -> None:
        self.job_id = job_id
        self.logs = logs
        super().__init__(f"job {job_id}: {message}" if job_id else message)


class GenerationTimeoutError(GenerationError):
    """A job did not finish within the time limit; it is left running and can be resumed."""


class GenerationInterrupted(GenerationError):
    """The user interrupted a job; ``canceled`` says whether it was canceled at the provider."""

    exit_code = 130

    def __init__(self, message: str, *, job_id: str | None = None, canceled: bool = False) -> None:
        self.canceled = canceled
        super().__init__(message, job_id=job_id)


class OutputDownloadError(GenerationError):
    """A finished job's output could not be downloaded (the job stays resumable)."""

    def __init__(self, message: str, *, job_id: str | None = None, url: str | None = None,
                 attempts: int = 0) -> None:
        self.url = url
        self.attempts = attempts
        super().__init__(message, job_id=job_id)


class ServiceGoneError(ProviderStatusError):
    """The provider says the API or model no longer exists (retired, shut down)."""


class PromptTooLongError(ConfigurationError):
    """A prompt sent as is (raw mode) is longer than the generator accepts."""

    def __init__(self, model: str, length: int, limit: int) -> None:
        self.model = model
        self.length = length
        self.limit = limit
        super().__init__(f"the prompt has {length} characters but {model} accepts at most {limit}; "
                         "shorten it, or drop --raw to let the writer fit it")


__all__ = [
    "AuthenticationError",
    "BadResponseError",
    "BatchError",
    "BudgetExceededError",
    "BudgetReachedError",
    "CameraError",
    "ConfigurationError",
    "ContextOverflowError",
    "CouncilError",
    "DocumentError",
    "GenerationError",
    "GenerationInterrupted",
    "GenerationTimeoutError",
    "ImageDownloadError",
    "ImageError",
    "ImageTooLargeError",
    "MissingApiKeyError",
    "MissingExtraError",
    "ModelCapabilityError",
    "ModelNotFoundError",
    "ModelRunError",
    "OcrError",
    "OutputDownloadError",
    "PromptTooLongError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderStatusError",
    "ProviderTimeoutError",
    "RateLimitError",
    "RefusalError",
    "ServiceGoneError",
    "UnknownModelError",
    "UnsupportedImageError",
    "VisionError",
    "redact",
]
