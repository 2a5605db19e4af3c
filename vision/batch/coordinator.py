"""What every worker of a batch shares when it asks a model: the rate, the budget, the paid answers.

One :class:`Coordinator` per batch holds the state; workers reach it through a *link*, whatever
runs them:

* in-process: :class:`LocalLink` calls it directly;
* the local process pool: it lives in a ``multiprocessing`` manager process (:class:`ManagerLink`);
* Dask: it lives **on the scheduler** as a scheduler plugin with its own handler
  (:mod:`vision.batch.dask_executor`), so it survives any worker being killed and every
  worker, on any machine, sees the same numbers with one round trip per call.

What it decides:

* **rate**: requests (and, if set, tokens) per minute for all workers together. Each ask reserves a
  slot (a generic cell rate algorithm: the next slot is one request interval, or the ask's tokens'
  share of a minute, after the previous one), so asks are spread evenly and never over the limit;
* **429**: a worker that is rate limited reports it and the coordinator sets a shared "not before"
  time (the provider's ``Retry-After``, else an exponential backoff), so every worker waits;
* **budget**: an ask reserves its estimated cost (``plan().max_cost_usd``) before it is sent and is
  refused when the spent plus reserved cost would pass the cap (or the price is unknown); the
  measured cost replaces the reservation after it;
* **paid answers**: an answer is stored here the moment it arrives, keyed by the ask, until the
  driver has written the file's record. A task retried after its worker died finds the answer
  and does not pay for it again; an ask that was started but never finished (its worker died
  mid-request) is counted as possibly billed, and the retried record says so. A written ask is
  remembered for a while, so a task Dask recomputes after a worker died (its result was already
  handed over) does not ask again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.managers import BaseManager
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
WRITTEN_TTL_S = 900.0  # how long a written ask is remembered, against a task recomputed after a worker died


@dataclass(frozen=True)
class Limits:
    """The shared limits of one batch (all optional)."""

    rpm: float | None = None  # requests per minute, all workers together
    tpm: float | None = None  # tokens per minute (input estimate + max output), all workers together
    budget_usd: float | None = None  # stop new asks when spent + reserved would pass it
    spent_usd: float = 0.0  # already spent by earlier runs into the same output

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "budget_usd"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (got {value})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Coordinator:
    """The shared state (thread-safe). Workers call it through :meth:`handle` via a link."""

    OPS = frozenset({"begin", "slot", "wait", "rate_limited", "settle", "release", "forget", "snapshot",
                     "pending_answers", "preload"})

    def __init__(self, limits: Limits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._lock = threading.Lock()
        self._next_request = 0.0
        self._next_tokens = 0.0
        self._not_before = 0.0
        self._streak = 0  # 429s in a row, for the backoff when the provider gives no Retry-After
        self.spent_usd = self.limits.spent_usd
        self.reserved_usd = 0.0
        self.exhausted = False
        self.asks = 0
        self.rate_limited_count = 0
        self.lost_attempts = 0
        self.refused = 0
        self._inflight: dict[str, float] = {}  # ask id -> reserved usd
        self._answers: dict[str, dict[str, Any]] = {}  # ask id -> the answer, until the driver wrote it
        self._written: dict[str, float] = {}  # ask id -> when the driver wrote its record (recent ones only)

    # -- dispatch ---------------------------------------------------------------------------------

    def handle(self, op: str, **kwargs: Any) -> Any:
        """Run one operation by name (what the links send)."""
        if op not in self.OPS:
            raise ValueError(f"unknown coordinator operation {op!r}")
        return getattr(self, op)(**kwargs)

    # -- budget and paid answers -------------------------------------------------------------------

    def begin(self, ask_id: str, usd: float | None) -> dict[str, Any]:
        """Before an ask: a stored answer to reuse, or a budget reservation (or a refusal)."""
        with self._lock:
            if ask_id in self._written:  # a task Dask recomputed after its worker died, already written
                return {"ok": False, "written": True}
            stored = self._answers.get(ask_id)
            if stored is not None:
                return {"ok": True, "answer": stored}
            lost = ask_id in self._inflight
            if lost:  # a previous attempt was sending when its worker died: it may have been billed
                self.lost_attempts += 1
                self.spent_usd += self._inflight.pop(ask_id) or 0.0
            budget = self.limits.budget_usd
            if budget is not None:
                reason = None
                if self.exhausted:
                    reason = f"the budget of ${budget:.4f} is used up"
                elif usd is None:
                    reason = "the price of this model is unknown, so a budget cannot be kept"
                elif self.spent_usd + self.reserved_usd + usd > budget + 1e-12:
                    reason = (f"the budget of ${budget:.4f} is reached (spent ${self.spent_usd:.4f}, "
                              f"reserved ${self.reserved_usd:.4f}, this ask up to ${usd:.4f})")
                if reason:
                    self.exhausted = True
                    self.refused += 1
                    return {"ok": False, "reason": reason, "possibly_billed_before": lost}
            self.reserved_usd += usd or 0.0
            self._inflight[ask_id] = usd or 0.0
            return {"ok": True, "answer": None, "possibly_billed_before": lost}

    def settle(self, ask_id: str, cost_usd: float | None, answer: dict[str, Any] | None = None) -> None:
        """After a paid answer: the measured cost replaces the reservation; the answer is kept."""
        with self._lock:
            reserved = self._inflight.pop(ask_id, 0.0)
            self.reserved_usd = max(0.0, self.reserved_usd - reserved)
            self.spent_usd += reserved if cost_usd is None else cost_usd
            self.asks += 1
            self._streak = 0
            if answer is not None:
                self._answers[ask_id] = answer

    def release(self, ask_id: str, billed: bool = False) -> None:
        """An ask that failed: give back its reservation (or count it, if it may have been billed)."""
        with self._lock:
            reserved = self._inflight.pop(ask_id, 0.0)
            self.reserved_usd = max(0.0, self.reserved_usd - reserved)
            if billed:
                self.spent_usd += reserved

    def forget(self, ask_ids: list[str]) -> None:
        """The driver wrote these records: their answers need not be kept any longer."""
        with self._lock:
            now = self._clock()
            for ask_id in ask_ids:
                self._answers.pop(ask_id, None)
                self._written[ask_id] = now
            if len(self._written) > 1000:
                self._written = {k: t for k, t in self._written.items() if now - t < WRITTEN_TTL_S}

    def pending_answers(self) -> dict[str, dict[str, Any]]:
        """Answers paid for but not yet written (saved by the driver when a run is interrupted)."""
        with self._lock:
            return dict(self._answers)

    def preload(self, answers: dict[str, dict[str, Any]]) -> None:
        """Answers an interrupted run paid for, so this run reuses them."""
        with self._lock:
            self._answers.update(answers)

    # -- rate -----------------------------------------------------------------------------------

    def slot(self, tokens: int = 0) -> float:
        """Reserve the next send slot; returns the seconds to wait before sending."""
        with self._lock:
            now = self._clock()
            at = max(now, self._not_before, self._next_request, self._next_tokens)
            if self.limits.rpm:
                self._next_request = at + 60.0 / self.limits.rpm
            if self.limits.tpm and tokens:
                self._next_tokens = at + tokens * 60.0 / self.limits.tpm
            return at - now

    def wait(self) -> float:
        """Seconds still to wait because of a 429 seen by any worker (0: go)."""
        with self._lock:
            return max(0.0, self._not_before - self._clock())

    def rate_limited(self, retry_after: float | None = None) -> float:
        """A worker got a 429: every worker waits ``retry_after`` (or a growing backoff)."""
        with self._lock:
            self.rate_limited_count += 1
            self._streak += 1
            delay = retry_after if retry_after and retry_after > 0 else min(MAX_BACKOFF_S, 2.0 ** (self._streak - 1))
            self._not_before = max(self._not_before, self._clock() + delay)
            return delay

    # -- reporting ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "spent_usd": round(self.spent_usd, 8), "reserved_usd": round(self.reserved_usd, 8),
                "budget_usd": self.limits.budget_usd, "exhausted": self.exhausted, "asks": self.asks,
                "refused": self.refused, "rate_limited": self.rate_limited_count,
                "lost_attempts": self.lost_attempts, "unwritten_answers": len(self._answers),
                "in_flight_asks": len(self._inflight),
            }


# -- links: how workers reach the coordinator ---------------------------------------------------------


class Link(Protocol):
    def call(self, op: str, **kwargs: Any) -> Any: ...


class LocalLink:
    """The coordinator in this process (the in-process executor, and the driver's own use)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    def call(self, op: str, **kwargs: Any) -> Any:
        return self.coordinator.handle(op, **kwargs)


class ManagerLink:
    """The coordinator in a ``multiprocessing`` manager process (the process pool). Picklable."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    def call(self, op: str, **kwargs: Any) -> Any:
        return self.proxy.handle(op, **kwargs)


class _Manager(BaseManager):
    """A manager process that serves one :class:`Coordinator` to the pool's workers."""


_Manager.register("Coordinator", Coordinator)


def start_manager(limits: Limits, context: Any) -> tuple[Any, ManagerLink]:
    """Start a manager process holding a :class:`Coordinator`; returns (manager, link). Shut it down after."""
    manager = _Manager(ctx=context)
    manager.start(_ignore_sigint)
    return manager, ManagerLink(manager.Coordinator(limits))  # type: ignore[attr-defined]


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when to stop
