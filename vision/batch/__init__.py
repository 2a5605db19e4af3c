"""Batches: the same per-file work over a folder, a bucket or a million photos, on one machine or a cluster.

>>> from vision.batch import run_batch
>>> report = run_batch("scans/", "out/", kind="receipt")              # doctest: +SKIP
>>> report = run_batch("s3://bucket/labels/", "out/", kind="nutrition",
...                    local_cluster=4, parquet=True)                 # doctest: +SKIP

The pieces, one place each:

* :mod:`~vision.batch.sources`: inputs (directories, globs, fsspec URLs), listed lazily; input keys;
* :mod:`~vision.batch.work`: the work on one file (read, hash, OCR, extract, ask), the same everywhere;
* :mod:`~vision.batch.executors`: in-process, a local process pool (the default), Dask
  (:mod:`~vision.batch.dask_executor`);
* :mod:`~vision.batch.coordinator`: the shared rate limit, 429 backoff, budget and paid answers;
* :mod:`~vision.batch.sinks`: JSONL, failures, partitioned Parquet, resumable;
* :mod:`~vision.batch.pipeline`: the driver that ties them together.
"""

from __future__ import annotations

from .coordinator import Coordinator, Limits
from .executors import EXECUTORS, Executor, LocalExecutor, ProcessExecutor, make_executor
from .pipeline import BatchReport, build_task, run_batch, run_pipeline
from .sinks import ResultStore, iter_jsonl
from .sources import EXTENSIONS, InputFile, input_key, iter_inputs
from .work import KINDS, Task, process_file

__all__ = [
    "EXECUTORS", "EXTENSIONS", "KINDS", "BatchReport", "Coordinator", "Executor", "InputFile", "Limits",
    "LocalExecutor", "ProcessExecutor", "ResultStore", "Task", "build_task", "input_key", "iter_inputs", "iter_jsonl",
    "make_executor", "process_file", "run_batch", "run_pipeline",
]
