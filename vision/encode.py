"""Provider-aware image encoding: size, crop, JPEG, and the billed image tokens before sending.

Each provider family bills images by its own rule (see ``vision/data/models.toml``). For a frame
and a model this module picks the size that keeps the needed detail at the fewest billed tokens:

* never more pixels than the provider keeps (it would downscale them anyway: bytes for nothing);
* ``detail="auto"`` caps the long edge at ``settings.auto_long_edge`` (768 px by default), enough
  for "what is this?"; ``detail="high"`` keeps everything the provider uses (small print, labels);
  ``detail="low"`` is the cheapest the provider offers;
* a final snap shrinks the image by at most 12% when that drops a whole tile row or patch column;
* always JPEG, re-encoded, so EXIF (GPS position, camera serial) never leaves the machine.

OpenAI requests always carry an explicit ``detail`` of ``low`` or ``high``: with ``auto`` the
provider chooses, and the cost could not be known before sending.
"""

from __future__ import annotations

import base64
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .config import Detail, ModelFacts
from .frame import Frame
from .util import sha256_hex

SNAP_MAX_SHRINK = 0.12  # at most 12% smaller when snapping to the provider's grid
TEXT_CHARS_PER_TOKEN = 4.0
MESSAGE_OVERHEAD_TOKENS = 4


def _fit(w: int, h: int, max_side: float) -> tuple[int, int]:
    scale = max_side / max(w, h)
    if scale >= 1:
        return w, h
    return max(1, math.floor(w * scale)), max(1, math.floor(h * scale))


def _scale(w: int, h: int, scale: float) -> tuple[int, int]:
    if scale >= 1:
        return w, h
    return max(1, math.floor(w * scale)), max(1, math.floor(h * scale))


@dataclass(frozen=True)
class TokenRule:
    """The image billing rule of one model, from its :class:`~vision.config.ModelFacts`."""

    facts: ModelFacts

    @property
    def kind(self) -> str:
        return self.facts.rule

    @property
    def key(self) -> tuple[Any, ...]:
        f = self.facts
        return (f.rule, f.base_tokens, f.tile_tokens, f.multiplier, f.patch, f.max_pixels, f.tokens, f.side)

    # -- what the provider keeps ----------------------------------------------------------------

    def provider_size(self, w: int, h: int, detail: Detail = "high") -> tuple[int, int]:
        """The size the provider itself would process this image at."""
        f = self.facts
        kind = f.rule
        if detail == "low":
            return self.low_size(w, h)
        if kind == "openai-tile":
            w, h = _fit(w, h, 2048)
            short = min(w, h)
            return _scale(w, h, 768 / short) if short > 768 else (w, h)
        if kind == "openai-patch":
            return self._patch_resize(w, h)
        if kind in {"anthropic", "unknown"}:
            w, h = _fit(w, h, 1568)
            if w * h > 1_200_000:
                w, h = _scale(w, h, math.sqrt(1_200_000 / (w * h)))
            return w, h
        if kind == "gemini":
            short = min(w, h)
            return _scale(w, h, 1152 / short) if short > 1152 else (w, h)
        if kind == "qwen":
            return self._smart_resize(w, h)
        if kind == "fixed":
            return _fit(w, h, f.side)
        raise ValueError(f"unknown token rule {kind!r}")

    def low_size(self, w: int, h: int) -> tuple[int, int]:
        """The cheapest useful size."""
        kind = self.facts.rule
        if kind == "gemini":
            return _fit(w, h, 384)
        if kind == "fixed":
            return _fit(w, h, self.facts.side)
        if kind == "qwen":
            return self._smart_resize(*_fit(w, h, 448))
        return _fit(w, h, 512)

    # -- billed tokens --------------------------------------------------------------------------

    def tokens(self, w: int, h: int, detail: Detail = "high") -> int:
        """Image tokens billed for an image sent at ``w`` x ``h`` with this ``detail``."""
        f = self.facts
        kind = f.rule
        if kind == "openai-tile":
            if detail == "low":
                return f.base_tokens
            pw, ph = self.provider_size(w, h)
            return f.base_tokens + f.tile_tokens * math.ceil(pw / 512) * math.ceil(ph / 512)
        if kind == "openai-patch":
            pw, ph = self._patch_resize(w, h)
            patches = min(1536, math.ceil(pw / 32) * math.ceil(ph / 32))
            return math.ceil(patches * f.multiplier)
        if kind in {"anthropic", "unknown"}:
            pw, ph = self.provider_size(w, h)
            return math.ceil(pw * ph / 750)
        if kind == "gemini":
            if w <= 384 and h <= 384:
                return 258
            unit = max(1, math.floor(min(w, h) / 1.5))
            return 258 * math.ceil(w / unit) * math.ceil(h / unit)
        if kind == "qwen":
            pw, ph = self._smart_resize(w, h)
            return (pw // f.patch) * (ph // f.patch)
        if kind == "fixed":
            return f.tokens
        raise ValueError(f"unknown token rule {kind!r}")

    def wire_detail(self, detail: Detail) -> str | None:
        """The ``detail`` field of an OpenAI image part, or ``None`` for rules that ignore it."""
        if self.facts.rule == "openai-tile":
            return "low" if detail == "low" else "high"
        return None

    # -- helpers --------------------------------------------------------------------------------

    def _patch_resize(self, w: int, h: int, patch: int = 32, cap: int = 1536) -> tuple[int, int]:
        if math.ceil(w / patch) * math.ceil(h / patch) <= cap:
            return w, h
        shrink = math.sqrt(patch * patch * cap / (w * h))
        shrink *= min(
            math.floor(w * shrink / patch) / (w * shrink / patch),
            math.floor(h * shrink / patch) / (h * shrink / patch),
        )
        return max(1, int(w * shrink)), max(1, int(h * shrink))

    def _smart_resize(self, w: int, h: int) -> tuple[int, int]:
        f = self.facts.patch
        max_pixels = self.facts.max_pixels
        min_pixels = 4 * f * f
        hb = max(f, round(h / f) * f)
        wb = max(f, round(w / f) * f)
        if hb * wb > max_pixels:
            beta = math.sqrt(h * w / max_pixels)
            hb = max(f, math.floor(h / beta / f) * f)
            wb = max(f, math.floor(w / beta / f) * f)
        elif hb * wb < min_pixels:
            beta = math.sqrt(min_pixels / (h * w))
            hb = math.ceil(h * beta / f) * f
            wb = math.ceil(w * beta / f) * f
        return wb, hb

    # -- planning -------------------------------------------------------------------------------

    def target_size(self, w: int, h: int, detail: Detail, auto_long_edge: int) -> tuple[int, int]:
        """The size to send: what the provider keeps, capped for ``auto``, snapped to the grid."""
        tw, th = self.low_size(w, h) if detail == "low" else self.provider_size(w, h, "high")
        if self.facts.rule == "qwen":
            tw, th = min(tw, w), min(th, h)  # smart_resize may round up; never upscale
        if detail == "auto":
            tw, th = _fit(tw, th, auto_long_edge)
        tw, th = self._snap(tw, th, detail)
        if self.tokens(tw, th, detail) > self.tokens(w, h, "high"):
            # rounding in a rule (Gemini's crop units on extreme aspect ratios) made the smaller image
            # dearer: send what the provider would have kept of the original instead
            return self.provider_size(w, h, "high")
        return tw, th

    def _snap(self, w: int, h: int, detail: Detail) -> tuple[int, int]:
        """Shrink by at most 12% where that saves clearly more tokens than it loses pixels.

        Rules billed by area (Anthropic, Qwen) never snap; step rules (tiles, patches) snap when a
        small shrink drops a whole row or column of tiles.
        """
        tokens0, area0 = self.tokens(w, h, detail), w * h
        best, best_gain = (w, h), 0.01
        for step in range(1, int(SNAP_MAX_SHRINK * 100) + 1):
            sw, sh = _scale(w, h, 1 - step / 100)
            gain = (1 - self.tokens(sw, sh, detail) / tokens0) - (1 - sw * sh / area0)
            if gain > best_gain:
                best, best_gain = (sw, sh), gain
        return best


@dataclass(frozen=True)
class EncodedImage:
    """One image exactly as it goes on the wire, with its estimated billed tokens."""

    data: bytes
    width: int
    height: int
    tokens: int
    detail: str | None
    source: str
    source_size: tuple[int, int]
    crop: tuple[int, int, int, int] | None = None
    mime: str = "image/jpeg"
    sha256: str = field(default="")

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", sha256_hex(self.data))

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_size": list(self.source_size),
            "sent_size": [self.width, self.height],
            "crop": list(self.crop) if self.crop else None,
            "bytes": len(self.data),
            "mime": self.mime,
            "detail": self.detail,
            "image_tokens": self.tokens,
            "sha256": self.sha256,
        }


_CACHE: OrderedDict[tuple[Any, ...], EncodedImage] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


def encode_image(
    frame: Frame,
    rule: TokenRule,
    *,
    detail: Detail = "auto",
    crop: tuple[int, int, int, int] | None = None,
    auto_long_edge: int = 768,
    quality: int = 85,
) -> EncodedImage:
    """Size, crop and JPEG-encode ``frame`` for ``rule``. Results are memoised per frame and rule,
    so follow-up questions about a pinned image are not re-encoded."""
    key = (frame.digest, rule.key, detail, crop, auto_long_edge, quality)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    region = frame.crop(crop) if crop else frame
    tw, th = rule.target_size(region.width, region.height, detail, auto_long_edge)
    sent = region.resized(size=(tw, th)) if (tw, th) != region.size else region
    data = sent.to_jpeg(quality)
    encoded = EncodedImage(
        data=data,
        width=tw,
        height=th,
        tokens=rule.tokens(tw, th, detail),
        detail=rule.wire_detail(detail),
        source=frame.source,
        source_size=frame.original_size or frame.size,
        crop=crop,
    )
    with _CACHE_LOCK:
        _CACHE[key] = encoded
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return encoded


def estimate_text_tokens(text: str) -> int:
    """A rough token count (about four characters a token); used for budgets and estimates."""
    return math.ceil(len(text) / TEXT_CHARS_PER_TOKEN) if text else 0


@dataclass
class RequestPlan:
    """What a request will send and what it should cost, known before anything goes out."""

    model: str
    images: list[EncodedImage]
    text_tokens: int
    max_output_tokens: int
    input_usd_per_mtok: float | None
    output_usd_per_mtok: float | None
    free: bool = False
    usd_per_second: float | None = None
    dropped_turns: int = 0

    @property
    def image_tokens(self) -> int:
        return sum(i.tokens for i in self.images)

    @property
    def input_tokens(self) -> int:
        return self.image_tokens + self.text_tokens

    @property
    def input_cost_usd(self) -> float | None:
        if self.free:
            return 0.0
        if self.input_usd_per_mtok is None:
            return None
        return self.input_tokens * self.input_usd_per_mtok / 1e6

    @property
    def max_cost_usd(self) -> float | None:
        """Input cost plus the cost of the longest answer allowed (``max_output_tokens``)."""
        if self.free:
            return 0.0
        if self.input_usd_per_mtok is None or self.output_usd_per_mtok is None:
            return None
        return self.input_cost_usd + self.max_output_tokens * self.output_usd_per_mtok / 1e6  # type: ignore[operator]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "images": [i.describe() for i in self.images],
            "image_tokens": self.image_tokens,
            "text_tokens_estimate": self.text_tokens,
            "input_tokens_estimate": self.input_tokens,
            "max_output_tokens": self.max_output_tokens,
            "price": {
                "input_usd_per_mtok": self.input_usd_per_mtok,
                "output_usd_per_mtok": self.output_usd_per_mtok,
                "usd_per_second": self.usd_per_second,
                "free": self.free,
            },
            "estimated_input_cost_usd": self.input_cost_usd,
            "estimated_max_cost_usd": self.max_cost_usd,
            "dropped_turns": self.dropped_turns,
        }
