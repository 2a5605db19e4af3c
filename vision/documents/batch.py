"""``vision extract DIR --jsonl OUT``: the batch pipeline (:mod:`vision.batch`) with one JSONL file.

The same pipeline as ``vision batch``, with the default executor (a local process pool, or this
process for one worker): each input has a stable key (absolute path and SHA-256 of its bytes); a
key already in ``OUT`` is skipped on a re-run, so an interrupted batch resumes where it stopped;
every line is written and flushed as its file finishes; a file that fails is a line with an
``error`` field and is tried again by the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from ..batch.executors import LocalExecutor, ProcessExecutor
from ..batch.pipeline import BatchReport, run_pipeline
from ..batch.sinks import ResultStore, iter_jsonl
from ..batch.sources import EXTENSIONS, input_key, iter_inputs
from ..batch.work import Task

__all__ = ["EXTENSIONS", "BatchReport", "done_keys", "expand_inputs", "input_key", "run_batch"]


def expand_inputs(spec: str) -> Iterator[Path]:
    """Files named by a directory (recursively, documents and images only), a glob, or a path."""
    for item in iter_inputs(spec):
        yield Path(item.location)


def done_keys(out: Path) -> set[str]:
    """Keys already in a JSONL output (successful lines only: failed files are retried)."""
    return {r["key"] for r in iter_jsonl(out) if r.get("key") and "error" not in r}


def run_batch(
    spec: str,
    out: Path,
    *,
    kind: str = "auto",
    engine: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    handle_sigint: bool = False,
) -> BatchReport:
    """Extract every file under ``spec`` into ``out`` (JSONL), resuming from what ``out`` holds."""
    task = Task(kind=kind, engine=engine)
    executor = LocalExecutor() if workers == 1 else ProcessExecutor(workers)
    last = [0]

    def on_progress(r: BatchReport) -> None:
        if progress and r.finished > last[0] and r.last:
            last[0] = r.finished
            progress(r.finished, r.total or r.listed, r.last)

    out.parent.mkdir(parents=True, exist_ok=True)
    return run_pipeline(task, spec, ResultStore(out), executor, progress=on_progress, handle_sigint=handle_sigint)
