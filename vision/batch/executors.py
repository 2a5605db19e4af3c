"""Where the per-file work runs: in this process, in a local process pool, or on Dask.

Every executor takes the same calls from the driver (:mod:`vision.batch.pipeline`): ``submit`` one
input under a ticket, ``poll`` for finished ones, ``call`` the shared coordinator, ``cancel``,
``close``. The driver keeps at most ``slots`` inputs in flight, so memory stays flat whatever the
collection size.

A worker process that dies (killed, out of memory, a crash in a codec) does not lose its input:
the process pool restarts and submits again what was in flight, Dask reschedules it elsewhere;
after ``retries`` more attempts the input is reported as failed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from .coordinator import Coordinator, Limits, Link, LocalLink, start_manager
from .sources import InputFile
from .work import Task, process_file, worker_setup

log = logging.getLogger(__name__)

EXECUTORS = ("local", "process", "dask")


@dataclass
class Finished:
    """One input back from a worker: its outcome, or why the task itself failed."""

    ticket: int
    outcome: dict[str, Any] | None = None
    error: str | None = None


class Executor(ABC):
    """The common shape of the three executors."""

    name = ""
    dashboard: str | None = None

    def __init__(self) -> None:
        self.link: Link | None = None

    @property
    @abstractmethod
    def slots(self) -> int:
        """How many inputs to keep in flight."""

    def describe(self) -> str:
        return self.name

    @abstractmethod
    def start(self, limits: Limits | None) -> None:
        """Start workers; with ``limits``, also the coordinator the tasks share."""

    @abstractmethod
    def submit(self, ticket: int, task: Task, item: InputFile, known_key: str | None) -> None: ...

    @abstractmethod
    def poll(self, timeout: float) -> list[Finished]:
        """Inputs finished since the last poll (waits up to ``timeout`` seconds for at least one)."""

    @property
    @abstractmethod
    def in_flight(self) -> int: ...

    def call(self, op: str, **kwargs: Any) -> Any:
        """An operation on the shared coordinator (from the driver)."""
        assert self.link is not None, "no coordinator: the batch does not ask a model"
        return self.link.call(op, **kwargs)

    def cancel(self) -> None:  # noqa: B027 - nothing to drop by default
        """Drop every input not finished (the driver is stopping)."""

    def abort(self) -> None:
        """Stop now (a second Ctrl-C): drop everything and start nothing more; work running may be lost."""
        self.cancel()

    def close(self) -> None:  # noqa: B027 - nothing to free by default
        """Stop the workers and free everything."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """In this process, one file at a time (``--executor local``): simple, and easy to debug."""

    name = "local"

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[tuple[int, Task, InputFile, str | None]] = deque()

    @property
    def slots(self) -> int:
        return 1

    def start(self, limits: Limits | None) -> None:
        if limits is not None:
            self.link = LocalLink(Coordinator(limits))

    def submit(self, ticket: int, task: Task, item: InputFile, known_key: str | None) -> None:
        self._queue.append((ticket, task, item, known_key))

    def poll(self, timeout: float) -> list[Finished]:
        if not self._queue:
            return []
        ticket, task, item, known = self._queue.popleft()
        return [Finished(ticket, process_file(task, item, self.link, known))]

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def cancel(self) -> None:
        self._queue.clear()


class ProcessExecutor(Executor):
    """A local pool of worker processes (the default): one file per process at a time."""

    name = "process"

    def __init__(self, workers: int | None = None, *, retries: int = 2) -> None:
        super().__init__()
        self.n = max(1, workers or os.cpu_count() or 1)
        self.retries = retries
        self._ctx = multiprocessing.get_context("spawn")  # safe with threads in the driver, same as Dask
        self._pool: ProcessPoolExecutor | None = None
        self._manager: Any = None
        self._futures: dict[Future[dict[str, Any]], tuple[int, Task, InputFile, str | None, int]] = {}
        self.restarts = 0

    @property
    def slots(self) -> int:
        return self.n * 2

    def describe(self) -> str:
        return f"process pool of {self.n} worker(s)"

    def start(self, limits: Limits | None) -> None:
        if limits is not None:
            self._manager, self.link = start_manager(limits, self._ctx)
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.n, mp_context=self._ctx, initializer=worker_setup)

    def submit(self, ticket: int, task: Task, item: InputFile, known_key: str | None, attempt: int = 0) -> None:
        assert self._pool is not None, "start() first"
        fut = self._pool.submit(process_file, task, item, self.link, known_key)
        self._futures[fut] = (ticket, task, item, known_key, attempt)

    def poll(self, timeout: float) -> list[Finished]:
        if not self._futures:
            return []
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        out: list[Finished] = []
        broken: list[tuple[int, Task, InputFile, str | None, int]] = []
        for fut in done:
            entry = self._futures.pop(fut)
            try:
                out.append(Finished(entry[0], fut.result()))
            except BrokenProcessPool:
                broken.append(entry)
            except Exception as exc:  # a bug in the work itself: reported for this input
                out.append(Finished(entry[0], error=f"{type(exc).__name__}: {exc}"))
        if broken:
            out += self._restart(broken)
        return out

    def _restart(self, broken: list[tuple[int, Task, InputFile, str | None, int]]) -> list[Finished]:
        """A worker died: every input in flight in that pool is lost with it; run them again in a new one."""
        assert self._pool is not None
        self._pool.shutdown(wait=True, cancel_futures=True)  # a broken pool fails all its futures at once
        failed: list[Finished] = []
        for fut, entry in list(self._futures.items()):  # every future left belonged to the broken pool
            del self._futures[fut]
            if not fut.cancelled() and fut.exception() is None:
                failed.append(Finished(entry[0], fut.result()))  # it finished just before the break
            else:
                broken.append(entry)
        self.restarts += 1
        log.warning("a worker process died; restarting the pool and running its %d input(s) again", len(broken))
        self._pool = self._new_pool()
        for ticket, task, item, known, attempt in broken:
            if attempt >= self.retries:
                failed.append(Finished(ticket, error=f"the worker process died {attempt + 1} times on it"))
            else:
                self.submit(ticket, task, item, known, attempt + 1)
        return failed

    @property
    def in_flight(self) -> int:
        return len(self._futures)

    def cancel(self) -> None:
        for fut in self._futures:
            fut.cancel()
        self._futures = {f: e for f, e in self._futures.items() if not f.cancelled()}

    def abort(self) -> None:
        """Terminate the worker processes: inputs already queued inside the pool would otherwise still start."""
        pool, self._pool = self._pool, None
        self._futures.clear()
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(timeout=5)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None


def make_executor(executor: str | None = None, *, workers: int | None = None, scheduler: str | None = None,
                  local_cluster: int | None = None, dashboard: bool = True, retries: int = 2) -> Executor:
    """The executor the CLI options name: ``local``, ``process`` (default) or ``dask``.

    ``scheduler`` (an existing cluster) or ``local_cluster`` (start one with N worker processes)
    imply ``dask``.
    """
    if scheduler and local_cluster:
        raise ValueError("give --scheduler (an existing cluster) or --local-cluster N (start one), not both")
    if executor is None:
        executor = "dask" if scheduler or local_cluster else "process"
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if executor != "dask" and (scheduler or local_cluster):
        raise ValueError(f"--scheduler and --local-cluster need --executor dask, not {executor}")
    if executor == "local":
        return LocalExecutor()
    if executor == "process":
        return ProcessExecutor(workers, retries=retries)
    from .dask_executor import DaskExecutor

    return DaskExecutor(scheduler=scheduler, n_workers=local_cluster or workers, dashboard=dashboard,
                        retries=retries)
