"""The provider protocol and the values every provider returns.

A :class:`VisionModel` answers a list of :class:`Message` (text plus pinned images) with an
:class:`Answer`. Capabilities are attributes (``can_stream``, ``max_images``, ``needs_key``,
``key_env_var``, ``supports_json_schema``), so callers never branch on the provider's name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import Config, Detail, ModelFacts, ProviderPreset, get_config
from ..encode import (
    MESSAGE_OVERHEAD_TOKENS,
    EncodedImage,
    RequestPlan,
    TokenRule,
    encode_image,
    estimate_text_tokens,
)
from ..errors import ContextOverflowError, ModelCapabilityError
from ..frame import Frame, ImageInput

log = logging.getLogger(__name__)


class Options(BaseModel):
    """Model options, passed the same way everywhere: library keyword, CLI ``-o key=value``, app field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(None, ge=0, le=2)
    max_output_tokens: int | None = Field(None, gt=0, le=200_000)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    detail: Detail | None = None  # None: the preset's, else "auto"
    seed: int | None = None
    timeout: float | None = Field(None, gt=0)
    json_schema: dict[str, Any] | None = None  # ask for a JSON answer matching this schema

    @classmethod
    def parse(cls, pairs: Sequence[str] = (), **overrides: Any) -> Options:
        """From ``["temperature=0.2", "detail=high"]`` (the CLI's ``-o``) plus keyword overrides."""
        values: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"option {pair!r} is not key=value")
            values[key.strip().replace("-", "_")] = value.strip()
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("max_tokens") is not None:
            values["max_output_tokens"] = values.pop("max_tokens")
        try:
            return cls(**values)
        except ValidationError as exc:
            msgs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'option'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"invalid model option(s): {msgs}") from None

    def cache_key(self) -> dict[str, Any]:
        return self.model_dump(exclude={"timeout"})


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int = 0  # estimated by vision.encode; providers do not report it separately
    cost_usd: float | None = 0.0  # None when the price is unknown
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    seconds: float | None = None  # compute time, for providers billed by time

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        secs = None if self.seconds is None and other.seconds is None else (self.seconds or 0) + (other.seconds or 0)
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.image_tokens + other.image_tokens,
            cost,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cached_tokens + other.cached_tokens,
            secs,
        )


@dataclass
class Answer:
    """A model's answer with what it cost."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    raw: Any = None
    plan: RequestPlan | None = None
    finish_reason: str | None = None
    cached: bool = False
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "model": self.model,
            "usage": self.usage.to_dict(),
            "latency_ms": round(self.latency_ms, 1),
            "finish_reason": self.finish_reason,
            "cached": self.cached,
            "estimated_cost_usd": self.plan.max_cost_usd if self.plan else None,
        }

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ImagePart:
    """An image pinned to a message, with how much of it to keep."""

    frame: Frame
    detail: Detail = "auto"
    crop: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    text: str
    images: tuple[ImagePart, ...] = ()


class StreamingAnswer:
    """Iterate for text deltas as they arrive; ``.answer`` holds the full :class:`Answer` afterwards."""

    def __init__(self, deltas: Iterator[str], finish: Callable[[str], Answer]) -> None:
        self._deltas = deltas
        self._finish = finish
        self._parts: list[str] = []
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        for delta in self._deltas:
            self._parts.append(delta)
            yield delta
        self.answer = self._finish("".join(self._parts))

    def text(self) -> str:
        """Consume the stream and return the whole text."""
        for _ in self:
            pass
        return self.answer.text if self.answer else ""


@runtime_checkable
class VisionModel(Protocol):
    """What every provider offers. See :class:`BaseVisionModel` for the shared implementation."""

    name: str
    can_stream: bool
    max_images: int
    needs_key: bool
    key_env_var: str | None
    supports_json_schema: bool

    def ask(self, prompt: str, images: Sequence[ImageInput] = (), *, system: str | None = None,
            options: Options | None = None) -> Answer: ...

    def stream(self, prompt: str, images: Sequence[ImageInput] = (), *, system: str | None = None,
               options: Options | None = None) -> StreamingAnswer: ...


class BaseVisionModel:
    """Shared behaviour: planning, image encoding, context budget, sync/async/stream entry points.

    Subclasses implement :meth:`_complete` (and optionally :meth:`_stream`, :meth:`_acomplete`).
    """

    provider_kind: ClassVar[str] = ""
    can_stream: bool = False
    supports_json_schema: bool = False

    def __init__(self, preset: ProviderPreset, model_id: str, *, config: Config | None = None) -> None:
        self.config = config or get_config()
        self.preset = preset
        self.provider = preset.name
        self.model_id = model_id
        self.name = f"{preset.name}/{model_id}" if model_id != preset.name else preset.name
        self.facts: ModelFacts = self.config.facts(preset.name, model_id)
        self.rule = TokenRule(self.facts)
        self.max_images = self.facts.max_images
        self.key_env_var = preset.key_env
        self.needs_key = preset.key_required()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- planning -------------------------------------------------------------------------------

    def check_vision(self) -> None:
        if not self.facts.vision:
            raise ModelCapabilityError(self.name, "it does not accept images (no vision); choose a vision model")

    def encode(self, part: ImagePart) -> EncodedImage:
        s = self.config.settings
        return encode_image(part.frame, self.rule, detail=part.detail, crop=part.crop,
                            auto_long_edge=s.auto_long_edge, quality=s.jpeg_quality)

    def source_side(self, detail: Detail = "auto") -> int:
        """The longest side worth decoding a photo at for this model and detail level."""
        if detail == "auto":
            return self.config.settings.auto_long_edge
        return 1024 if detail == "low" else 2048

    def max_output_tokens(self, options: Options) -> int:
        return options.max_output_tokens or self.config.settings.max_output_tokens

    def plan(self, messages: Sequence[Message], options: Options | None = None) -> tuple[list[Message], RequestPlan]:
        """Fit ``messages`` into the context window and price the request, sending nothing.

        The first user message (which pins the images) and the last one are always kept; older
        follow-up turns are dropped, oldest first, when the conversation would overflow.
        """
        options = options or Options()
        n_images = sum(len(m.images) for m in messages)
        if n_images:
            self.check_vision()
        if n_images > self.max_images:
            raise ModelCapabilityError(self.name, f"it takes at most {self.max_images} image(s), got {n_images}")
        encoded = {id(p): self.encode(p) for m in messages for p in m.images}
        max_out = self.max_output_tokens(options)
        budget = self.facts.context_window - max_out

        def cost(msgs: Sequence[Message]) -> int:
            return sum(
                estimate_text_tokens(m.text) + MESSAGE_OVERHEAD_TOKENS + sum(encoded[id(p)].tokens for p in m.images)
                for m in msgs
            )

        kept = list(messages)
        dropped = 0
        while cost(kept) > budget:
            removable = _first_droppable_turn(kept)
            if removable is None:
                raise ContextOverflowError(self.name, cost(kept) + max_out, self.facts.context_window)
            del kept[removable : removable + 2]
            dropped += 1
        if dropped:
            log.warning("%s: dropped %d old turn(s) to fit the %d-token context", self.name, dropped,
                        self.facts.context_window)
        images = [encoded[id(p)] for m in kept for p in m.images]
        plan = RequestPlan(
            model=self.name,
            images=images,
            text_tokens=sum(estimate_text_tokens(m.text) + MESSAGE_OVERHEAD_TOKENS for m in kept),
            max_output_tokens=max_out,
            input_usd_per_mtok=self.facts.input_usd_per_mtok,
            output_usd_per_mtok=self.facts.output_usd_per_mtok,
            free=self.preset.free,
            usd_per_second=self.facts.usd_per_second,
            dropped_turns=dropped,
        )
        return kept, plan

    def measured_cost(self, usage: Usage) -> float | None:
        if self.preset.free:
            return 0.0
        f = self.facts
        if usage.seconds is not None and f.usd_per_second is not None:
            return usage.seconds * f.usd_per_second
        if f.input_usd_per_mtok is None or f.output_usd_per_mtok is None:
            return None
        return (usage.input_tokens * f.input_usd_per_mtok + usage.output_tokens * f.output_usd_per_mtok) / 1e6

    # -- entry points ---------------------------------------------------------------------------

    def ask(self, prompt: str, images: Sequence[ImageInput] = (), *, system: str | None = None,
            options: Options | None = None) -> Answer:
        """One question about zero or more images."""
        return self.complete(_messages(prompt, images, system, options), options)

    def stream(self, prompt: str, images: Sequence[ImageInput] = (), *, system: str | None = None,
               options: Options | None = None) -> StreamingAnswer:
        return self.complete_stream(_messages(prompt, images, system, options), options)

    async def aask(self, prompt: str, images: Sequence[ImageInput] = (), *, system: str | None = None,
                   options: Options | None = None) -> Answer:
        return await self.acomplete(_messages(prompt, images, system, options), options)

    def complete(self, messages: Sequence[Message], options: Options | None = None) -> Answer:
        """Plan and send ``messages``."""
        options = options or Options()
        kept, plan = self.plan(messages, options)
        return self.send(kept, plan, options)

    def complete_stream(self, messages: Sequence[Message], options: Options | None = None) -> StreamingAnswer:
        options = options or Options()
        kept, plan = self.plan(messages, options)
        return self.send_stream(kept, plan, options)

    async def acomplete(self, messages: Sequence[Message], options: Options | None = None) -> Answer:
        options = options or Options()
        kept, plan = await asyncio.to_thread(self.plan, messages, options)
        return await self.asend(kept, plan, options)

    def send(self, messages: list[Message], plan: RequestPlan, options: Options) -> Answer:
        """Send already planned messages (see :meth:`plan`)."""
        start = time.perf_counter()
        return self._finish(self._complete(messages, plan, options), plan, start)

    async def asend(self, messages: list[Message], plan: RequestPlan, options: Options) -> Answer:
        self.load_client()  # here, on the loop's thread, never first inside a worker thread
        start = time.perf_counter()
        return self._finish(await self._acomplete(messages, plan, options), plan, start)

    def load_client(self) -> None:
        """Import the client library now. Importing two libraries for the first time in two threads at
        once (a Replicate call in a worker thread while the loop imports ``openai``) can leave one of
        them half-initialised, so async entry points import on the calling thread first."""

    def send_stream(self, messages: list[Message], plan: RequestPlan, options: Options) -> StreamingAnswer:
        start = time.perf_counter()
        if not self.can_stream:
            def once() -> Iterator[str]:
                answer = self._finish(self._complete(messages, plan, options), plan, start)
                final["answer"] = answer
                yield answer.text

            final: dict[str, Answer] = {}
            return StreamingAnswer(once(), lambda _text: final["answer"])
        final = {}
        deltas = self._stream(messages, plan, options, final)

        def finish(text: str) -> Answer:
            answer = final.get("answer") or Answer(text=text, model=self.name)
            answer.text = text
            return self._finish(answer, plan, start)

        return StreamingAnswer(deltas, finish)

    def _finish(self, answer: Answer, plan: RequestPlan, start: float) -> Answer:
        answer.plan = plan
        if not answer.latency_ms:
            answer.latency_ms = (time.perf_counter() - start) * 1000
        answer.usage.image_tokens = plan.image_tokens
        answer.usage.cost_usd = self.measured_cost(answer.usage)
        return answer

    # -- to implement ---------------------------------------------------------------------------

    def _complete(self, messages: list[Message], plan: RequestPlan, options: Options) -> Answer:
        raise NotImplementedError

    def _stream(self, messages: list[Message], plan: RequestPlan, options: Options,
                final: dict[str, Answer]) -> Iterator[str]:
        raise NotImplementedError

    async def _acomplete(self, messages: list[Message], plan: RequestPlan, options: Options) -> Answer:
        return await asyncio.to_thread(self._complete, messages, plan, options)

    async def astream(self, messages: Sequence[Message], options: Options | None = None) -> AsyncIterator[str]:
        """Async iteration over a stream (runs the sync stream in a worker thread)."""
        stream = self.complete_stream(messages, options)
        iterator = iter(stream)
        sentinel = object()
        while True:
            delta = await asyncio.to_thread(next, iterator, sentinel)
            if delta is sentinel:
                return
            yield delta  # type: ignore[misc]


def _messages(prompt: str, images: Sequence[ImageInput], system: str | None, options: Options | None) -> list[Message]:
    detail = (options or Options()).detail or "auto"
    if isinstance(images, (str, bytes, Frame)) or not isinstance(images, Sequence):
        images = [images]  # type: ignore[list-item]
    parts = tuple(ImagePart(Frame.load(i), detail) for i in images)
    msgs = [Message("system", system)] if system else []
    msgs.append(Message("user", prompt, parts))
    return msgs


def _first_droppable_turn(messages: list[Message]) -> int | None:
    """Index of the oldest user+assistant pair that may be dropped (not the image-pinning first turn,
    not the final question, not few-shot examples before the first image)."""
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    pinned = next((i for i in users if messages[i].images), users[0] if users else None)
    for i in users:
        if pinned is not None and i <= pinned:
            continue
        if i == users[-1]:
            return None
        if i + 1 < len(messages) and messages[i + 1].role == "assistant":
            return i
    return None
