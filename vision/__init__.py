"""vision-toolkit: point a camera or a photo at something and ask about it.

The public API is re-exported here and imported lazily, so ``import vision`` (and ``vision --help``)
stays fast; the heavy parts (OpenCV, the model clients, OCR) load on first use.

>>> import vision
>>> answer = vision.ask("assets/book_cover.png", "What is the title?", model="local", history=False)
>>> "THE QUIET ORCHARD" in answer.text
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Frame": "vision.frame",
    "ImageLimits": "vision.frame",
    "ask": "vision.chat",
    "Conversation": "vision.chat",
    "Camera": "vision.camera",
    "open_camera": "vision.camera",
    "LiveSession": "vision.live",
    "watch": "vision.live",
    "Council": "vision.council",
    "CouncilResult": "vision.council",
    "ask_council": "vision.council",
    "run_batch": "vision.batch",
    "imagine": "vision.bridge.pipeline",
    "plan_imagine": "vision.bridge.pipeline",
    "Generation": "vision.bridge.pipeline",
    "get_model": "vision.providers.registry",
    "describe_providers": "vision.providers.registry",
    "Options": "vision.providers.base",
    "Answer": "vision.providers.base",
    "Usage": "vision.providers.base",
    "Message": "vision.providers.base",
    "ImagePart": "vision.providers.base",
    "VisionModel": "vision.providers.base",
    "StreamingAnswer": "vision.providers.base",
    "RequestPlan": "vision.encode",
    "EncodedImage": "vision.encode",
    "TokenRule": "vision.encode",
    "encode_image": "vision.encode",
    "OcrResult": "vision.ocr.result",
    "OcrWord": "vision.ocr.result",
    "OcrLine": "vision.ocr.result",
    "read_text": "vision.ocr.engines",
    "get_engine": "vision.ocr.engines",
    "History": "vision.history",
    "get_config": "vision.config",
    "load_config": "vision.config",
    "reload_config": "vision.config",
    "Config": "vision.config",
    "quality": "vision.quality",
    "errors": "vision.errors",
}
_ERRORS = {
    "VisionError", "ConfigurationError", "MissingApiKeyError", "MissingExtraError", "UnknownModelError",
    "ModelCapabilityError", "ContextOverflowError", "BudgetExceededError", "ImageError", "UnsupportedImageError",
    "ImageTooLargeError", "ImageDownloadError", "CameraError", "OcrError", "DocumentError", "ProviderError",
    "ProviderTimeoutError", "ProviderConnectionError", "AuthenticationError", "RateLimitError",
    "ProviderStatusError", "ModelNotFoundError", "RefusalError", "BadResponseError", "ModelRunError",
    "GenerationError", "GenerationTimeoutError", "GenerationInterrupted", "OutputDownloadError", "ServiceGoneError",
    "PromptTooLongError", "CouncilError", "BatchError", "BudgetReachedError",
}
_EXPORTS.update(dict.fromkeys(_ERRORS, "vision.errors"))

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vision' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover
    from . import errors, quality
    from .bridge.pipeline import Generation, imagine, plan_imagine
    from .camera import Camera, open_camera
    from .chat import Conversation, ask
    from .config import Config, get_config, load_config, reload_config
    from .council import Council, CouncilResult, ask_council
    from .encode import EncodedImage, RequestPlan, TokenRule, encode_image
    from .errors import *
    from .frame import Frame, ImageLimits
    from .history import History
    from .live import LiveSession, watch
    from .ocr.engines import get_engine, read_text
    from .ocr.result import OcrLine, OcrResult, OcrWord
    from .providers.base import Answer, ImagePart, Message, Options, StreamingAnswer, Usage, VisionModel
    from .providers.registry import describe_providers, get_model
