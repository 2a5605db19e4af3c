"""The work done on one file, the same under every executor: read, hash, OCR, extract, ask.

:func:`process_file` never raises for a bad file: it returns an outcome (``done``, ``failed``,
``unchanged`` or ``budget``) that the driver writes. Asks go through an :class:`AskGuard` that
takes the batch's shared rate slot, keeps the budget and stores the answer where a retried task
finds it (see :mod:`vision.batch.coordinator`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import (
    BudgetReachedError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    VisionError,
)
from ..util import sha256_hex
from .coordinator import Coordinator, Link, LocalLink
from .sources import InputFile, key_for, read_input

log = logging.getLogger(__name__)

KINDS = ("receipt", "nutrition", "generic", "auto", "none")
MAX_INPUT_BYTES = 200 * 1024 * 1024  # PDFs may be large; images are checked again by Frame's own limits


@dataclass(frozen=True)
class Task:
    """What to do with every file of a batch. Small and picklable: it travels with each task.

    ``kind="none"`` skips OCR (only the ask). ``question`` asks the model about each image;
    ``explain`` has it explain each extracted document (see :mod:`vision.documents.explain`).
    ``base_url`` is the model's endpoint as the driver resolved it, so every worker sends to the same
    place; API keys never travel with the task: workers read them from their own environment.
    """

    kind: str = "auto"
    engine: str | None = None
    question: str | None = None
    explain: bool = False
    model: str | None = None
    base_url: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    rate_limit_retries: int = 6

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.question is not None and not self.question.strip():
            raise ValueError("the question is empty")
        if self.question and self.explain:
            raise ValueError("ask a question or explain each document, not both")
        if self.kind == "none" and not self.question:
            raise ValueError("--kind none does no extraction, so it needs a question (--ask)")
        if self.explain and self.kind == "none":
            raise ValueError("explain needs a document: choose a kind other than none")

    @property
    def asks(self) -> bool:
        return bool(self.question or self.explain)

    def identity(self) -> dict[str, Any]:
        """What decides the output of a file (not how fast or where it runs)."""
        return {"kind": self.kind, "engine": self.engine, "question": self.question, "explain": self.explain,
                "model": self.model if self.asks else None, "options": dict(self.options) if self.asks else {}}

    def fingerprint(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def process_file(task: Task, item: InputFile, link: Link | None = None, known_key: str | None = None) -> dict[str, Any]:
    """Do ``task`` on one input; returns an outcome dict for the driver (never raises for a bad file).

    ``known_key``: the key this location had when a previous run did it; if the bytes still hash to
    it, the outcome is ``unchanged`` and nothing is done.
    """
    start = time.perf_counter()
    cpu = time.process_time()
    out: dict[str, Any] = {"source": item.location, "worker": _worker_id()}
    try:
        data = read_input(item.location, max_bytes=MAX_INPUT_BYTES)
    except (VisionError, OSError) as exc:
        return _failed(out, None, exc, start)
    sha = sha256_hex(data)
    key = key_for(item.location, sha)
    out["key"] = key
    if known_key is not None and key == known_key:
        return {**out, "status": "unchanged", **_peak()}
    record: dict[str, Any] = {"key": key, "source": item.location, "sha256": sha, "bytes": len(data),
                              "mtime_ns": item.mtime_ns}
    guard: AskGuard | None = None
    try:
        source, image = _decode(data, item.location)
        doc = None
        if task.kind != "none":
            from ..documents import extract

            doc = extract(source, kind=task.kind, engine=task.engine)
            fields = doc.to_json_dict()
            fields.pop("evidence", None)
            fields["source"] = item.location
            record.update(fields)
        else:
            record["kind"] = "none"
        if task.asks:
            guard = AskGuard(link or LocalLink(Coordinator()), f"{key}|{task.fingerprint()}", task.rate_limit_retries)
            record["ask"] = _ask(task, guard, image() if callable(image) else image, doc)
    except BudgetReachedError as exc:
        return {**out, "status": "budget", "error": str(exc), "seconds": time.perf_counter() - start, **_peak()}
    except AlreadyWritten:
        return {**out, "status": "duplicate", "seconds": time.perf_counter() - start, **_peak()}
    except VisionError as exc:
        return _failed(out, key, exc, start)
    except Exception as exc:  # a bug or a library's surprise on one odd file: that file fails, not the batch
        log.warning("%s: unexpected failure", item.location, exc_info=True)
        return _failed(out, key, exc, start)
    record["seconds"] = round(time.perf_counter() - start, 3)
    record["worker"] = out["worker"]
    return {**out, "status": "done", "record": record, "ask_ids": guard.ask_ids if guard else [],
            "cost_usd": (record.get("ask") or {}).get("cost_usd") or 0.0, "seconds": record["seconds"],
            "cpu_seconds": time.process_time() - cpu, **_peak()}


def _failed(out: dict[str, Any], key: str | None, exc: Exception, start: float) -> dict[str, Any]:
    return {**out, "status": "failed", "key": key, "error": f"{type(exc).__name__}: {exc}",
            "seconds": time.perf_counter() - start, **_peak()}


def _decode(data: bytes, location: str) -> tuple[Any, Any]:
    """What to OCR (bytes for a PDF, else the decoded Frame) and the image to ask about (lazily for PDFs)."""
    from ..frame import Frame

    if data[:5] == b"%PDF-":
        def first_page() -> Frame:
            from ..ocr.pdf import iter_pages

            return next(iter_pages(data, pages=[0])).render()

        return data, first_page
    frame = Frame.from_bytes(data, source=location)
    return frame, frame


def worker_setup() -> None:
    """Run once in each worker process: one thread per OCR call (workers are the parallelism), quiet logs,
    and Ctrl-C left to the driver, which stops the batch cleanly."""
    import signal
    import threading

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # Tesseract
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a core dependency
        pass
    if logging.getLogger().level < logging.WARNING:
        logging.getLogger().setLevel(logging.WARNING)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _peak() -> dict[str, Any]:
    """The worker's peak resident memory so far (for the benchmark and the report)."""
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"peak_rss_mb": round(kb / 1024, 1)}
    except (ImportError, OSError):
        return {}


# -- asking -----------------------------------------------------------------------------------------


def _ask(task: Task, guard: AskGuard, image: Any, doc: Any) -> dict[str, Any]:
    from ..providers.base import Options

    model = guard.wrap(_model(task.model, task.base_url))
    options = Options(**dict(task.options))
    if task.explain:
        from ..documents.explain import explain

        result = explain(image, doc, model=model, options=options, history=False)
        data = result.model_dump(mode="json", exclude={"document"})
        usage = data.get("usage") or {}
        ask = {"task": "explain", "model": result.model, "answer": result.answer,
               "explanation": data.get("explanation"), "disagreements": data.get("disagreements"),
               "notes": data.get("notes"), "usage": usage, "cost_usd": usage.get("cost_usd"),
               "latency_ms": round(result.latency_ms, 1)}
    else:
        from ..chat import Conversation

        chat = Conversation(image, model=model, options=options, history=False, cache=False)
        answer = chat.ask(task.question)
        ask = {"task": "ask", "question": task.question, "model": answer.model, "answer": answer.text,
               "usage": answer.usage.to_dict(), "cost_usd": answer.usage.cost_usd,
               "estimated_cost_usd": answer.plan.max_cost_usd if answer.plan else None,
               "latency_ms": round(answer.latency_ms, 1), "finish_reason": answer.finish_reason}
    if guard.reused:
        ask["reused_answer"] = True  # paid by an attempt whose worker died before handing it over
    if guard.possibly_billed_twice:
        ask["possibly_billed_twice"] = True  # an earlier attempt died mid-request
    return ask


_CONFIGS: dict[tuple[int, str, str | None], tuple[Any, Any]] = {}


def _model_config(provider: str, base_url: str | None) -> Any:
    """This process's configuration with the batch's changes (built once per configuration)."""
    from ..config import get_config

    cfg = get_config()
    key = (id(cfg), provider, base_url)
    hit = _CONFIGS.get(key)
    if hit is not None and hit[0] is cfg:
        return hit[1]
    # the batch retries 429s itself, through the shared limiter; history and cache are per-machine SQLite
    settings = cfg.settings.model_copy(update={"max_retries": 0, "history": False, "cache": False})
    providers = dict(cfg.providers)
    if base_url and provider in providers:
        providers[provider] = providers[provider].model_copy(update={"base_url": base_url, "base_url_env": None})
    built = cfg.model_copy(update={"settings": settings, "providers": providers})
    if len(_CONFIGS) > 8:
        _CONFIGS.clear()
    _CONFIGS[key] = (cfg, built)
    return built


def _model(name: str | None, base_url: str | None) -> Any:
    """A fresh model object (its send gets wrapped), sharing this process's HTTP clients."""
    from ..config import get_config
    from ..providers.registry import get_model

    preset, _ = get_config().resolve_model(name)
    return get_model(name, config=_model_config(preset.name, base_url))


class AlreadyWritten(Exception):
    """This file's ask is already in the output (a task recomputed after a worker died): stop, ask nothing."""


@dataclass
class AskGuard:
    """Wraps a model's ``send``: shared budget, shared rate slot and 429 backoff, stored answers."""

    link: Link
    ask_base: str
    retries: int = 6
    sleep: Callable[[float], None] = time.sleep
    ask_ids: list[str] = field(default_factory=list)
    reused: bool = False
    possibly_billed_twice: bool = False

    def wrap(self, model: Any) -> Any:
        original = model.send

        def send(messages: Any, plan: Any, options: Any) -> Any:
            return self.send(original, messages, plan, options)

        model.send = send  # this model object belongs to this one file
        return model

    def send(self, original: Callable[..., Any], messages: Any, plan: Any, options: Any) -> Any:
        ask_id = hashlib.sha256(f"{self.ask_base}|{len(self.ask_ids)}".encode()).hexdigest()[:32]
        self.ask_ids.append(ask_id)
        begin = self.link.call("begin", ask_id=ask_id, usd=plan.max_cost_usd)
        if begin.get("written"):
            raise AlreadyWritten(ask_id)
        self.possibly_billed_twice |= bool(begin.get("possibly_billed_before"))
        if begin.get("answer"):
            self.reused = True
            return _answer_from(begin["answer"], plan)
        if not begin.get("ok"):
            raise BudgetReachedError(begin.get("reason") or "the budget is used up")
        tokens = plan.input_tokens + plan.max_output_tokens
        for attempt in range(self.retries + 1):
            self._wait_for_slot(tokens)
            try:
                answer = original(messages, plan, options)
            except RateLimitError as exc:
                delay = self.link.call("rate_limited", retry_after=exc.retry_after)
                log.info("429 from %s: every worker waits %.2f s", exc.model, delay)
                if attempt == self.retries:
                    self.link.call("release", ask_id=ask_id)
                    raise
                continue
            except (ProviderTimeoutError, ProviderConnectionError):
                self.link.call("release", ask_id=ask_id, billed=True)  # it may have been processed
                raise
            except BaseException:
                self.link.call("release", ask_id=ask_id)
                raise
            self.link.call("settle", ask_id=ask_id, cost_usd=answer.usage.cost_usd, answer=_answer_dict(answer))
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_for_slot(self, tokens: int) -> None:
        while True:
            delay = self.link.call("slot", tokens=tokens)
            if delay <= 0:  # the slot already allows for any 429's "not before" time
                return
            self.sleep(delay)
            remaining = self.link.call("wait")  # a 429 elsewhere while this worker waited
            if remaining <= 0:
                return
            self.sleep(remaining)


def _answer_dict(answer: Any) -> dict[str, Any]:
    return {"text": answer.text, "model": answer.model, "usage": asdict(answer.usage),
            "latency_ms": answer.latency_ms, "finish_reason": answer.finish_reason, "request_id": answer.request_id}


def _answer_from(data: dict[str, Any], plan: Any) -> Any:
    from ..providers.base import Answer, Usage

    return Answer(text=data["text"], model=data["model"], usage=Usage(**data["usage"]),
                  latency_ms=data.get("latency_ms") or 0.0, plan=plan, finish_reason=data.get("finish_reason"),
                  request_id=data.get("request_id"))
