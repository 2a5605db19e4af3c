"""Vision-capable models behind one protocol; see :mod:`vision.providers.base`."""

from .base import Answer, BaseVisionModel, ImagePart, Message, Options, StreamingAnswer, Usage, VisionModel
from .registry import describe_providers, get_model

__all__ = ["Answer", "BaseVisionModel", "ImagePart", "Message", "Options", "StreamingAnswer", "Usage",
           "VisionModel", "describe_providers", "get_model"]
