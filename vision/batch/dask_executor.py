"""The Dask executor: an existing cluster (``--scheduler tcp://HOST:8786``) or a ``LocalCluster``.

Needs the ``dask`` extra (``pip install 'vision-toolkit[dask]'``); the scheduler and every worker
need vision-toolkit installed (the same version), as for any Dask code. Each input is one task
with ``retries``; a worker that dies mid-task has its task rescheduled by the scheduler. The
batch's :class:`~vision.batch.coordinator.Coordinator` runs inside the scheduler as a plugin with
its own handler, so the rate limit, the 429 backoff, the budget and the paid answers are shared by
every worker and survive any of them dying.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import BatchError, MissingExtraError
from .coordinator import Coordinator, Limits
from .executors import Executor, Finished
from .sources import InputFile
from .work import Task, process_file, worker_setup

log = logging.getLogger(__name__)

try:
    import distributed
    from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("dask", "the Dask executor", "dask[distributed]") from exc


def handler_name(run_id: str) -> str:
    return f"vision_batch_{run_id}"


class CoordinatorPlugin(SchedulerPlugin):
    """Holds one batch's :class:`Coordinator` in the scheduler and answers its handler."""

    idempotent = False

    def __init__(self, run_id: str, limits: dict[str, Any]) -> None:
        self.run_id = run_id
        self.limits = limits
        self.coordinator: Coordinator | None = None
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.coordinator = Coordinator(Limits(**self.limits))
        scheduler.handlers[handler_name(self.run_id)] = self.handle

    async def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.handlers.pop(handler_name(self.run_id), None)

    def handle(self, action: str, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.coordinator is not None
        try:
            return {"result": self.coordinator.handle(action, **(kwargs or {}))}
        except Exception as exc:  # sent back to the caller, who raises it
            return {"error": f"{type(exc).__name__}: {exc}"}


def _unwrap(reply: dict[str, Any]) -> Any:
    if "error" in reply:
        raise BatchError(f"batch coordinator on the scheduler: {reply['error']}")
    return reply["result"]


class DaskLink:
    """Reaches the coordinator on the scheduler from a task (picklable: only the handler's name)."""

    def __init__(self, handler: str) -> None:
        self.handler = handler

    def call(self, op: str, **kwargs: Any) -> Any:
        from distributed import get_worker
        from distributed.utils import sync

        worker = get_worker()
        return _unwrap(sync(worker.loop, getattr(worker.scheduler, self.handler), action=op, kwargs=kwargs))


class _ClientLink:
    """The same coordinator, from the driver's client."""

    def __init__(self, client: Any, handler: str) -> None:
        self.client = client
        self.handler = handler

    def call(self, op: str, **kwargs: Any) -> Any:
        return _unwrap(self.client.sync(getattr(self.client.scheduler, self.handler), action=op, kwargs=kwargs))


class _Setup(WorkerPlugin):
    """One OCR thread per worker process, as in the process pool (for the LocalCluster this starts)."""

    def setup(self, worker: Any) -> None:
        worker_setup()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Processes started inside inherit an ignored SIGINT, so a Ctrl-C in the terminal reaches only the
    driver, which then stops the batch cleanly instead of every worker dying at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def local_cluster(n_workers: int, *, threads_per_worker: int = 1, dashboard: bool = True) -> Any:
    """A ``LocalCluster`` of worker processes on 127.0.0.1 over TCP, set up for OCR work.

    Settings that differ from Dask's defaults, each measured on the SROIE receipts
    (``benchmarks/batch_bench.py``):

    * one OCR thread per worker: the processes are the parallelism;
    * glibc keeps its adaptive ``mmap`` threshold: Dask's ``MALLOC_TRIM_THRESHOLD_`` turns it off,
      and every large image buffer then costs an ``mmap``/``munmap`` pair (OCR ran about 3x slower,
      mostly in the kernel);
    * one malloc arena (``MALLOC_ARENA_MAX=1``) and no statistical profiler: Dask runs a task in a
      worker thread, which gets its own arena, and samples every thread's stack every 10 ms. With
      both, 2 workers did 1.14-1.28 files/s against the process pool's 1.31-1.40 (12 % more CPU per
      file); without, 1.31-1.42 (the same CPU per file as the pool). The dashboard's Profile page
      stays empty for these workers.

    The dashboard, when asked for and bokeh is installed, is at http://127.0.0.1:8787/status (or the
    next free port).
    """
    import dask

    address = "127.0.0.1:8787" if dashboard and importlib.util.find_spec("bokeh") else None
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.nanny.pre-spawn-environ.MALLOC_ARENA_MAX": 1,
                          "distributed.worker.profile.enabled": False}), _sigint_ignored(), \
            warnings.catch_warnings():
        # a busy 8787 moves the dashboard to another port; the link printed after says which
        warnings.filterwarnings("ignore", message="Port 8787 is already in use", category=UserWarning)
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, host="127.0.0.1",
            protocol="tcp", scheduler_port=0, dashboard_address=address, silence_logs=logging.ERROR)
    try:
        with distributed.Client(cluster) as client:
            client.register_plugin(_Setup(), name="vision-batch-setup")
    except BaseException:
        cluster.close()
        raise
    return cluster


class DaskExecutor(Executor):
    """Dask: an existing scheduler, or a ``LocalCluster`` of ``n_workers`` processes on 127.0.0.1."""

    name = "dask"

    def __init__(self, *, scheduler: str | None = None, n_workers: int | None = None, dashboard: bool = True,
                 retries: int = 2, connect_timeout: float = 20.0, threads_per_worker: int = 1) -> None:
        super().__init__()
        self.address = scheduler
        self.n_workers = n_workers or os.cpu_count() or 1
        self.want_dashboard = dashboard
        self.retries = retries
        self.connect_timeout = connect_timeout
        self.threads_per_worker = threads_per_worker
        self.cluster: Any = None
        self.client: Any = None
        self.run_id = uuid.uuid4().hex[:12]
        self._plugin: str | None = None
        self._task_link: DaskLink | None = None  # set when the batch asks a model
        self._futures: dict[Any, int] = {}
        self._slots = 2
        self._slots_at = 0.0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, limits: Limits | None) -> None:
        _align_logging()
        try:
            if self.address:
                self.client = distributed.Client(self.address, timeout=self.connect_timeout)
            else:
                self.cluster = local_cluster(self.n_workers, threads_per_worker=self.threads_per_worker,
                                             dashboard=self.want_dashboard)
                self.client = distributed.Client(self.cluster)
        except OSError as exc:
            self.close()
            raise BatchError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from exc
        try:
            self.client.wait_for_workers(1, timeout=self.connect_timeout)
        except (TimeoutError, distributed.TimeoutError) as exc:
            self.close()
            raise BatchError(f"the Dask scheduler at {self.address} has no workers "
                             f"(none joined within {self.connect_timeout:g} s)") from exc
        self._check_workers()
        if limits is not None:
            self._start_coordinator(limits)
        if self.cluster is not None and self.cluster.dashboard_link and self.want_dashboard \
                and importlib.util.find_spec("bokeh") is not None:
            self.dashboard = self.client.dashboard_link
        elif self.address:
            self.dashboard = self._external_dashboard()

    def _external_dashboard(self) -> str | None:
        try:
            info = self.client.scheduler_info()
            return self.client.dashboard_link if info.get("services", {}).get("dashboard") else None
        except Exception:  # the link is a convenience
            return None

    def _check_workers(self) -> None:
        """Every worker can import this vision-toolkit (same version), before any input is sent."""
        from .. import __version__

        try:
            versions = self.client.run(_worker_version)
        except Exception as exc:
            self.close()
            raise BatchError(f"the Dask workers cannot run vision-toolkit's batch ({type(exc).__name__}: {exc}); "
                             f"install vision-toolkit[dask]=={__version__} on every worker and the scheduler") from exc
        wrong = {w: v for w, v in versions.items() if v != __version__}
        if wrong:
            self.close()
            raise BatchError(f"Dask workers run another vision-toolkit ({wrong}); this one is {__version__}")

    def _start_coordinator(self, limits: Limits) -> None:
        name = f"vision-batch-{self.run_id}"
        try:
            self.client.register_plugin(CoordinatorPlugin(self.run_id, limits.to_dict()), name=name)
        except Exception as exc:
            self.close()
            raise BatchError(
                f"the Dask scheduler cannot hold the batch's shared rate limit and budget ({type(exc).__name__}: "
                f"{exc}); install vision-toolkit[dask] on the scheduler too") from exc
        self._plugin = name
        self.link = _ClientLink(self.client, handler_name(self.run_id))
        self._task_link = DaskLink(handler_name(self.run_id))

    def describe(self) -> str:
        if self.cluster is not None:
            return f"Dask LocalCluster of {self.n_workers} worker process(es) at {self.cluster.scheduler_address}"
        return f"Dask cluster at {self.address} ({self.workers} worker thread(s))"

    def close(self) -> None:
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        if client is not None:
            if self._plugin:
                with contextlib.suppress(Exception):
                    client.unregister_scheduler_plugin(self._plugin)
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            cluster.close()

    # -- work -----------------------------------------------------------------------------------

    @property
    def workers(self) -> int:
        if self.client is None:
            return self.n_workers
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:
            return 1

    @property
    def slots(self) -> int:
        now = time.monotonic()
        if now - self._slots_at > 5.0:  # a cluster can grow or shrink while the batch runs
            self._slots, self._slots_at = max(2, 2 * self.workers), now
        return self._slots

    def submit(self, ticket: int, task: Task, item: InputFile, known_key: str | None) -> None:
        fut = self.client.submit(process_file, task, item, self._task_link, known_key,
                                 key=f"vision-batch-{self.run_id}-{ticket}", pure=False, retries=self.retries)
        self._futures[fut] = ticket

    def poll(self, timeout: float) -> list[Finished]:
        if not self._futures:
            return []
        try:
            done, _ = distributed.wait(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except (TimeoutError, distributed.TimeoutError):
            return []
        ok = [f for f in done if f.status == "finished"]
        out: list[Finished] = []
        if ok:
            for fut, outcome in zip(ok, self.client.gather(ok), strict=True):
                out.append(Finished(self._futures.pop(fut), outcome))
        for fut in done:
            if fut in self._futures:
                ticket = self._futures.pop(fut)
                try:
                    exc = fut.exception()
                    error = f"{type(exc).__name__}: {exc}"
                except Exception as why:  # cancelled
                    error = f"{type(why).__name__}: {why}"
                out.append(Finished(ticket, error=error))
        return out

    @property
    def in_flight(self) -> int:
        return len(self._futures)

    def cancel(self) -> None:
        if self._futures and self.client is not None:
            with contextlib.suppress(Exception):
                self.client.cancel(list(self._futures))
        self._futures.clear()


def _align_logging() -> None:
    """Dask sets its loggers to INFO when imported; keep them no chattier than the application's root logger."""
    root = logging.getLogger().getEffectiveLevel()
    for name in ("distributed", "bokeh", "tornado"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < root:
            logger.setLevel(root)


def _worker_version() -> str:
    from .. import __version__

    return __version__
