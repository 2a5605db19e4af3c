"""Asking about pictures: one question (:func:`ask`) or a conversation (:class:`Conversation`).

A conversation pins its images to the first question; follow-ups reuse the same encoded bytes
(never re-encoded), custom instructions apply to every ask, presets bring instructions, a default
question and few-shot examples, and a context budget drops the oldest follow-ups (never the pinned
images or the new question) rather than letting a long chat overflow the model's window.
Every ask is logged to the history (unless turned off) and may be served from the answer cache.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .cache import AnswerCache, cache_key
from .config import Config, Detail, Preset, get_config
from .encode import RequestPlan
from .errors import BudgetExceededError, VisionError
from .frame import Frame, ImageInput
from .history import History, StoredImage
from .providers.base import Answer, BaseVisionModel, ImagePart, Message, Options, StreamingAnswer, Usage
from .providers.registry import get_model
from .util import sha256_hex

log = logging.getLogger(__name__)


class Conversation:
    """Questions and follow-ups about the same pinned image(s).

    >>> chat = Conversation(["assets/book_cover.png"], model="local")
    >>> chat.ask("What is the title?").text  # doctest: +ELLIPSIS
    'Local engine...'
    """

    def __init__(
        self,
        images: ImageInput | Sequence[ImageInput] = (),
        *,
        model: str | BaseVisionModel | None = None,
        system: str | None = None,
        preset: str | Preset | None = None,
        options: Options | None = None,
        history: bool | None = None,
        cache: bool | None = None,
        budget_usd: float | None = None,
        config: Config | None = None,
    ) -> None:
        self.config = config or get_config()
        self.model = model if isinstance(model, BaseVisionModel) else get_model(model, config=self.config)
        self.preset = self.config.preset(preset) if isinstance(preset, str) else preset
        self.options = options or Options()
        self.detail: Detail = self.options.detail or (self.preset.detail if self.preset else "auto")
        self.instructions = "\n\n".join(x for x in (self.preset.system if self.preset else "", system or "") if x)
        if isinstance(images, (str, bytes, Frame)) or not isinstance(images, Sequence):
            images = [images]  # type: ignore[list-item]
        side = self.model.source_side(self.detail)
        self.frames = [Frame.load(i, max_side=side) for i in images]
        self.history_enabled = self.config.settings.history if history is None else history
        self.cache_enabled = self.config.settings.cache if cache is None else cache
        self.budget_usd = budget_usd if budget_usd is not None else self.config.settings.budget_usd
        self.id = uuid.uuid4().hex[:16]
        self.turns: list[Message] = []
        self.usage = Usage()
        self.last_plan: RequestPlan | None = None

    # -- messages -------------------------------------------------------------------------------

    def messages(self, question: str) -> list[Message]:
        """Every message the model would receive if ``question`` were asked now."""
        msgs: list[Message] = []
        if self.instructions:
            msgs.append(Message("system", self.instructions))
        for ex in self.preset.examples if self.preset else []:
            msgs += [Message("user", ex.user), Message("assistant", ex.assistant)]
        parts = tuple(ImagePart(f, self.detail) for f in self.frames)
        if not self.turns:
            msgs.append(Message("user", question, parts))
        else:
            first, *rest = self.turns
            msgs.append(Message("user", first.text, parts))
            msgs += rest
            msgs.append(Message("user", question))
        return msgs

    def _question(self, question: str | None) -> str:
        q = (question or "").strip() or (self.preset.prompt if self.preset else "")
        if not q:
            raise ValueError("ask needs a question (or a preset with a default question)")
        return q

    def _options(self, overrides: dict[str, Any]) -> Options:
        merged = {**self.options.model_dump(exclude_none=True), **{k: v for k, v in overrides.items() if v is not None}}
        merged.setdefault("detail", self.detail)
        return Options(**merged)

    def plan(self, question: str | None = None, **options: Any) -> RequestPlan:
        """What asking ``question`` would send and cost, without sending anything."""
        q = self._question(question)
        _, plan = self.model.plan(self.messages(q), self._options(options))
        return plan

    def reset(self) -> None:
        """Start a new chat about the same images: forget the questions and answers so far."""
        self.turns = []
        self.id = uuid.uuid4().hex[:16]

    # -- asking ---------------------------------------------------------------------------------

    def ask(self, question: str | None = None, **options: Any) -> Answer:
        """Ask a question (or a follow-up) and wait for the whole answer."""
        turn = self._prepare(question, options)
        if turn.hit:
            return turn.hit
        try:
            answer = self.model.send(turn.messages, turn.plan, turn.options)
        except VisionError as exc:
            turn.failed(exc)
            raise
        return turn.done(answer)

    async def aask(self, question: str | None = None, **options: Any) -> Answer:
        """:meth:`ask`, awaitable: several conversations can ask at once."""
        turn = self._prepare(question, options)
        if turn.hit:
            return turn.hit
        try:
            answer = await self.model.asend(turn.messages, turn.plan, turn.options)
        except VisionError as exc:
            turn.failed(exc)
            raise
        return turn.done(answer)

    def stream(self, question: str | None = None, **options: Any) -> StreamingAnswer:
        """Ask and iterate over the answer as it arrives; ``.answer`` is set at the end."""
        turn = self._prepare(question, options)
        if turn.hit:
            hit = turn.hit
            return StreamingAnswer(iter([hit.text]), lambda _t: hit)
        inner = self.model.send_stream(turn.messages, turn.plan, turn.options)

        def deltas() -> Iterator[str]:
            try:
                yield from inner
            except VisionError as exc:
                turn.failed(exc)
                raise

        def finish(_text: str) -> Answer:
            assert inner.answer is not None
            return turn.done(inner.answer)

        return StreamingAnswer(deltas(), finish)

    def _prepare(self, question: str | None, overrides: dict[str, Any]) -> _Turn:
        q = self._question(question)
        opts = self._options(overrides)
        kept, plan = self.model.plan(self.messages(q), opts)
        self.last_plan = plan
        if self.budget_usd is not None and plan.max_cost_usd is not None and plan.max_cost_usd > self.budget_usd:
            raise BudgetExceededError(plan.max_cost_usd, self.budget_usd)
        key = None
        if self.cache_enabled:
            key = cache_key({
                "model": self.model.name,
                "endpoint": self.model.preset.resolved_base_url(),
                "messages": [
                    [m.role, m.text, [[p.frame.digest, p.detail, p.crop] for p in m.images]] for m in kept
                ],
                "options": opts.cache_key(),
            })
        turn = _Turn(self, q, kept, plan, opts, key)
        if key and (hit := self._cached(key, plan)):
            self._record(q, hit, plan, opts)
            turn.hit = hit
        return turn

    # -- cache, history, bookkeeping --------------------------------------------------------------

    def _cached(self, key: str, plan: RequestPlan) -> Answer | None:
        hit = AnswerCache(self.config.cache_path).get(key)
        if hit is None:
            return None
        usage = Usage(**{**hit.get("usage", {}), "cost_usd": 0.0})
        return Answer(text=hit["text"], model=hit["model"], usage=usage, latency_ms=0.0, plan=plan,
                      finish_reason=hit.get("finish_reason"), cached=True)

    def _store(self, key: str | None, answer: Answer) -> None:
        if key:
            AnswerCache(self.config.cache_path).put(key, {
                "text": answer.text, "model": answer.model, "usage": answer.usage.to_dict(),
                "finish_reason": answer.finish_reason,
            })

    def _record(self, question: str, answer: Answer, plan: RequestPlan, opts: Options) -> None:
        self.turns += [Message("user", question), Message("assistant", answer.text)]
        self.usage = self.usage + answer.usage
        self._log(question, plan, opts, answer=answer)

    def _log_error(self, question: str, plan: RequestPlan, opts: Options, exc: Exception) -> None:
        self._log(question, plan, opts, error=f"{type(exc).__name__}: {exc}")

    def _log(self, question: str, plan: RequestPlan, opts: Options, *, answer: Answer | None = None,
             error: str | None = None) -> None:
        if not self.history_enabled:
            return
        try:
            History(self.config.history_path).log(
                model=self.model.name, prompt=question, system=self.instructions or None,
                answer=answer.text if answer else None, error=error, images=self._stored_images(plan),
                conversation_id=self.id, usage=answer.usage.to_dict() if answer else None,
                estimated_cost_usd=plan.max_cost_usd, latency_ms=answer.latency_ms if answer else None,
                cached=bool(answer and answer.cached), options=opts.model_dump(exclude_none=True),
                extra={"preset": self.preset.name if self.preset else None,
                       "dropped_turns": plan.dropped_turns},
            )
        except Exception as exc:  # history must never break an ask
            log.warning("could not write history to %s: %s", self.config.history_path, exc)

    def _stored_images(self, plan: RequestPlan) -> list[StoredImage]:
        if plan.images:
            return [StoredImage(e.sha256, e.data, e.mime, e.width, e.height, e.source) for e in plan.images]
        out = []
        for f in self.frames:
            small = f.resized(1568)
            data = small.to_jpeg(85)
            out.append(StoredImage(sha256_hex(data), data, "image/jpeg", small.width, small.height, f.source))
        return out


@dataclass
class _Turn:
    """One question on its way: what will be sent, and how to record the outcome."""

    chat: Conversation
    question: str
    messages: list[Message]
    plan: RequestPlan
    options: Options
    cache_key: str | None
    hit: Answer | None = None

    def done(self, answer: Answer) -> Answer:
        self.chat._store(self.cache_key, answer)
        self.chat._record(self.question, answer, self.plan, self.options)
        return answer

    def failed(self, exc: Exception) -> None:
        self.chat._log_error(self.question, self.plan, self.options, exc)


def ask(
    images: ImageInput | Sequence[ImageInput],
    question: str | None = None,
    *,
    model: str | BaseVisionModel | None = None,
    system: str | None = None,
    preset: str | None = None,
    stream: bool = False,
    history: bool | None = None,
    cache: bool | None = None,
    config: Config | None = None,
    **options: Any,
) -> Answer | StreamingAnswer:
    """Ask one question about one or more images.

    ``options`` are model options (``temperature``, ``max_output_tokens``, ``reasoning_effort``,
    ``detail``, ``seed``, ``timeout``). With ``stream=True`` a :class:`StreamingAnswer` is returned.
    """
    chat = Conversation(images, model=model, system=system, preset=preset, options=Options.parse(**options),
                        history=history, cache=cache, config=config)
    return chat.stream(question) if stream else chat.ask(question)

