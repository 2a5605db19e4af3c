"""The driver of a batch: list inputs lazily, keep a bounded number in flight, write each result once.

The same loop runs every executor. Only the driver writes: each outcome is keyed, a key already
written is dropped (a task retried after its worker died, an input listed twice), so no input is
written twice or lost. Stopping (Ctrl-C once, or ``stop.set()``) submits nothing new and waits for
the inputs in flight, whose asks may already be paid for; a second Ctrl-C abandons them, and any
answer that arrived but was not written is kept in the output for the next run.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BatchError, MissingApiKeyError
from .coordinator import Limits
from .executors import Executor, Finished, make_executor
from .sinks import FAILURES, PARQUET, RESULTS, ResultStore, check_manifest, load_unwritten, save_unwritten
from .sources import InputFile, iter_inputs
from .work import Task

log = logging.getLogger(__name__)

MAX_FAILURES_KEPT = 1000  # in the report; every failure is in the failures file


@dataclass
class BatchReport:
    """What a batch did; updated as it runs (the progress callback gets it)."""

    executor: str = ""
    done: int = 0
    skipped: int = 0  # done by an earlier run, unchanged
    failed: int = 0
    not_asked: int = 0  # stopped by the budget (tried again by the next run)
    listed: int = 0
    total: int | None = None  # every input, once the background count has finished
    cost_usd: float = 0.0  # asks paid in this run
    spent_usd: float = 0.0  # into this output, all runs (and attempts lost with a worker)
    asked: int = 0
    duplicates: int = 0  # outcomes dropped because their key was already written
    worker_cpu_seconds: float = 0.0  # CPU time the workers' processes spent on the files done
    interrupted: bool = False
    abandoned: int = 0  # inputs in flight when a second Ctrl-C stopped the run
    budget_reached: bool = False
    last: str | None = None
    dashboard: str | None = None
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    worker_peak_rss_mb: dict[str, float] = field(default_factory=dict)
    coordinator: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.not_asked

    @property
    def files_per_second(self) -> float:
        elapsed = self.seconds or (time.monotonic() - self.started)
        return self.finished / elapsed if elapsed > 0 else 0.0

    def estimated_total_cost(self) -> float | None:
        """This run's cost so far plus the average ask's cost for every input still to do."""
        if not self.asked:
            return None
        if self.total is None:
            return None
        left = max(0, self.total - self.skipped - self.finished)
        return self.cost_usd + self.cost_usd / self.asked * left

    def to_dict(self) -> dict[str, Any]:
        return {
            "executor": self.executor, "done": self.done, "skipped": self.skipped, "failed": self.failed,
            "not_asked": self.not_asked, "total": self.total, "seconds": round(self.seconds, 3),
            "files_per_second": round(self.files_per_second, 3), "asked": self.asked,
            "cost_usd": round(self.cost_usd, 8), "spent_usd": round(self.spent_usd, 8),
            "budget_reached": self.budget_reached, "interrupted": self.interrupted, "abandoned": self.abandoned,
            "duplicates_dropped": self.duplicates, "dashboard": self.dashboard,
            "failures": [{"source": s, "error": e} for s, e in self.failures],
            "worker_peak_rss_mb": self.worker_peak_rss_mb, "shared": self.coordinator,
        }

    def summary(self) -> str:
        parts = [f"{self.done} done", f"{self.skipped} already done", f"{self.failed} failed"]
        if self.not_asked:
            parts.append(f"{self.not_asked} not asked (budget)")
        line = ", ".join(parts) + f" in {self.seconds:.1f} s ({self.files_per_second:.2f} files/s)"
        if self.asked or self.spent_usd:
            line += f"; asks ${self.cost_usd:.4f} this run, ${self.spent_usd:.4f} in all"
        return line


def build_task(*, kind: str = "auto", engine: str | None = None, ask: str | None = None, explain: bool = False,
               model: str | None = None, options: Sequence[str] | dict[str, Any] | None = None,
               budget_usd: float | None = None) -> Task:
    """A :class:`Task` with the model resolved here, in the driver (name, endpoint, key present, price known)."""
    opts: tuple[tuple[str, Any], ...] = ()
    name, base_url = model, None
    if ask or explain:
        from ..providers.base import Options
        from ..providers.registry import get_model

        parsed = Options.parse(**options) if isinstance(options, dict) else Options.parse(options or [])
        opts = tuple(sorted(parsed.model_dump(exclude_none=True).items()))
        m = get_model(model)
        name, base_url = m.name, m.preset.resolved_base_url()
        if m.preset.key_required() and not m.preset.api_key():
            raise MissingApiKeyError(m.provider, m.key_env_var or "API_KEY")
        if budget_usd is not None and not m.preset.free and m.facts.input_usd_per_mtok is None:
            raise BatchError(f"the price of {m.name} is unknown, so a budget cannot be kept; teach it the price "
                             "([[models]] in the config file) or drop --budget")
    return Task(kind=kind, engine=engine, question=ask, explain=explain, model=name if (ask or explain) else None,
                base_url=base_url, options=opts)


def run_batch(
    sources: str | Sequence[str],
    out: str | Path,
    *,
    kind: str = "auto",
    engine: str | None = None,
    ask: str | None = None,
    explain: bool = False,
    model: str | None = None,
    options: Sequence[str] | dict[str, Any] | None = None,
    executor: str | Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    local_cluster: int | None = None,
    parquet: bool = False,
    rate: float | None = None,
    tpm: float | None = None,
    budget_usd: float | None = None,
    retries: int = 2,
    dashboard: bool = True,
    progress: Callable[[BatchReport], None] | None = None,
    notify: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    handle_sigint: bool = False,
) -> BatchReport:
    """Run one batch into the directory ``out`` (see :mod:`vision.batch.sinks` for what it holds).

    Run it again with the same arguments to resume: what is done is skipped, failed files are tried
    again. ``executor``: ``"process"`` (default), ``"local"``, ``"dask"`` or an :class:`Executor`.
    """
    task = build_task(kind=kind, engine=engine, ask=ask, explain=explain, model=model, options=options,
                      budget_usd=budget_usd)
    ex = executor if isinstance(executor, Executor) else make_executor(
        executor, workers=workers, scheduler=scheduler, local_cluster=local_cluster, dashboard=dashboard,
        retries=retries)
    out = Path(out).expanduser()
    check_manifest(out, task.identity(), task.fingerprint())
    store = ResultStore(out / RESULTS, failures=out / FAILURES, parquet=out / PARQUET if parquet else None)
    return run_pipeline(task, sources, store, ex, rate=rate, tpm=tpm, budget_usd=budget_usd, state_dir=out,
                        progress=progress, notify=notify, stop=stop, handle_sigint=handle_sigint)


def run_pipeline(
    task: Task,
    sources: str | Sequence[str],
    store: ResultStore,
    executor: Executor,
    *,
    rate: float | None = None,
    tpm: float | None = None,
    budget_usd: float | None = None,
    state_dir: Path | None = None,
    progress: Callable[[BatchReport], None] | None = None,
    notify: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    handle_sigint: bool = False,
) -> BatchReport:
    """The driver loop (every executor, every output layout). The executor is started and closed here."""
    say = notify or (lambda message: log.info("%s", message))
    stop = stop or threading.Event()
    report = BatchReport()
    with store:
        limits = None
        if task.asks:
            limits = Limits(rpm=rate, tpm=tpm, budget_usd=budget_usd, spent_usd=store.spent_usd)
        counter = _Counter(sources, stop)
        try:
            executor.start(limits)
            report.executor = executor.describe()
            report.dashboard = executor.dashboard
            say(f"running on {report.executor}")
            if report.dashboard:
                say(f"Dask dashboard: {report.dashboard}")
            if task.asks and state_dir is not None and (kept := load_unwritten(state_dir)):
                executor.call("preload", answers=kept)
                say(f"reusing {len(kept)} answer(s) an interrupted run paid for")
            counter.start()
            with _sigint_stops(stop, say, executor) if handle_sigint else contextlib.nullcontext():
                _drive(task, sources, store, executor, report, stop, progress, counter)
        except KeyboardInterrupt:
            report.interrupted = True
            report.abandoned = executor.in_flight
            executor.abort()
            say(f"abandoned {report.abandoned} file(s) in flight; run the same command again to resume")
            if not handle_sigint:
                raise
        finally:
            counter.stop()
            _finish(task, executor, report, state_dir)
            if report.abandoned and report.coordinator.get("in_flight_asks"):
                say(f"{report.coordinator['in_flight_asks']} ask(s) were being sent when abandoned: they may be "
                    "billed, and will be asked again by the next run")
            report.seconds = time.monotonic() - report.started
            executor.close()
    return report


def _drive(task: Task, sources: str | Sequence[str], store: ResultStore, executor: Executor, report: BatchReport,
           stop: threading.Event, progress: Callable[[BatchReport], None] | None, counter: _Counter) -> None:
    inputs: Iterator[InputFile] = iter_inputs(sources)
    tickets: dict[int, InputFile] = {}
    to_forget: list[str] = []  # ask ids whose records are written: the coordinator may drop their answers
    next_ticket = 0
    listing = True
    last_forget = time.monotonic()

    def halted() -> bool:
        return stop.is_set() or report.budget_reached

    try:
        while True:
            while listing and not halted() and executor.in_flight < executor.slots:
                item = next(inputs, None)
                if item is None:
                    listing = False
                    report.total = report.listed
                    break
                report.listed += 1
                if store.unchanged(item.location, item.size, item.mtime_ns):
                    report.skipped += 1
                    continue
                next_ticket += 1
                tickets[next_ticket] = item
                executor.submit(next_ticket, task, item, store.known_key(item.location))
            if report.total is None and counter.total is not None:
                report.total = counter.total
            if executor.in_flight == 0:
                if progress:
                    progress(report)
                if not listing or halted():
                    return
                continue
            for fin in executor.poll(0.2):
                _record(fin, tickets.pop(fin.ticket), store, report, to_forget)
                if progress:
                    progress(report)
            if to_forget and (len(to_forget) >= 64 or time.monotonic() - last_forget > 1.0):
                executor.call("forget", ask_ids=list(to_forget))
                to_forget.clear()
                last_forget = time.monotonic()
    finally:
        if stop.is_set():
            report.interrupted = True
        if to_forget:
            with contextlib.suppress(Exception):
                executor.call("forget", ask_ids=list(to_forget))


def _record(fin: Finished, item: InputFile, store: ResultStore, report: BatchReport, to_forget: list[str]) -> None:
    o = fin.outcome or {}
    report.last = item.location
    if o.get("peak_rss_mb") and o.get("worker"):
        w = o["worker"]
        report.worker_peak_rss_mb[w] = max(report.worker_peak_rss_mb.get(w, 0.0), o["peak_rss_mb"])
    status = o.get("status") if fin.outcome else "failed"
    if status == "unchanged":
        report.skipped += 1
    elif status == "duplicate":
        report.duplicates += 1
    elif status == "done":
        if store.write(o["record"]):
            report.done += 1
            report.worker_cpu_seconds += float(o.get("cpu_seconds") or 0.0)
            if o.get("ask_ids"):
                report.asked += 1
                report.cost_usd += float(o.get("cost_usd") or 0.0)
        else:
            report.duplicates += 1
        to_forget.extend(o.get("ask_ids") or [])
    elif status == "budget":
        report.not_asked += 1
        report.budget_reached = True
        store.fail(item.location, o.get("key"), o.get("error") or "not asked: budget reached", not_asked=True)
    else:
        error = o.get("error") or fin.error or "unknown failure"
        report.failed += 1
        if len(report.failures) < MAX_FAILURES_KEPT:
            report.failures.append((item.location, error))
        store.fail(item.location, o.get("key"), error, worker=o.get("worker"))


def _finish(task: Task, executor: Executor, report: BatchReport, state_dir: Path | None) -> None:
    """Settle with the coordinator: its totals, and answers paid for but not written (kept for next run)."""
    if not task.asks or executor.link is None:
        return
    try:
        report.coordinator = executor.call("snapshot")
        report.spent_usd = float(report.coordinator.get("spent_usd") or 0.0)
        unwritten = executor.call("pending_answers")
    except Exception as exc:  # the cluster went away: nothing more to learn
        log.warning("could not read the batch's shared state: %s", exc)
        return
    if state_dir is not None:
        save_unwritten(state_dir, unwritten)  # nothing when every answer was written


class _Counter:
    """Counts the inputs in a background thread, so the progress bar knows the total early."""

    def __init__(self, sources: str | Sequence[str], stop: threading.Event) -> None:
        self.sources = sources
        self.total: int | None = None
        self._stop = stop
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vision-batch-count", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        n = 0
        try:
            for _ in iter_inputs(self.sources):
                if self._halt.is_set():
                    return
                n += 1
        except Exception as exc:  # the driver's own listing reports the problem
            log.debug("counting the inputs failed: %s", exc)
            return
        self.total = n

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)


@contextlib.contextmanager
def _sigint_stops(stop: threading.Event, say: Callable[[str], None], executor: Executor) -> Iterator[None]:
    """First Ctrl-C: submit nothing new, finish what is in flight. Second: abandon it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        say(f"stopping: finishing the {executor.in_flight} file(s) in flight, whose asks may be paid for "
            "(Ctrl-C again to abandon them)")

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
