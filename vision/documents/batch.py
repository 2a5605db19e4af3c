"""Extract many files: several processes, a progress bar, resumable, one bad file never stops the rest.

Each input has a stable key (path and SHA-256 of its bytes); the JSONL output already holding a key
is skipped on a re-run, so an interrupted batch resumes where it stopped. Every line is written and
flushed as its file finishes, so a crash loses at most the files in flight.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif", ".avif", ".pdf"}


def expand_inputs(spec: str) -> Iterator[Path]:
    """Files named by a directory (recursively, documents and images only), a glob, or a path."""
    p = Path(spec).expanduser()
    if p.is_dir():
        for root, _dirs, files in os.walk(p):
            for name in sorted(files):
                if Path(name).suffix.lower() in EXTENSIONS:
                    yield Path(root) / name
        return
    if any(ch in spec for ch in "*?["):
        for match in sorted(glob.iglob(spec, recursive=True)):
            if Path(match).is_file():
                yield Path(match)
        return
    yield p


def input_key(path: Path) -> str:
    """``path#sha256``: the same file at the same path is done once; an edited file is redone."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return f"{path}#{h.hexdigest()[:16]}"


def done_keys(out: Path) -> set[str]:
    """Keys already in a JSONL output (successful lines only: failed files are retried)."""
    keys: set[str] = set()
    if not out.exists():
        return keys
    with open(out, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash: redo that file
            if rec.get("key") and "error" not in rec:
                keys.add(rec["key"])
    return keys


def _extract_one(path: str, key: str, kind: str, engine: str | None) -> dict[str, Any]:
    from ..errors import VisionError
    from . import extract

    try:
        doc = extract(path, kind=kind, engine=engine)
    except VisionError as exc:
        return {"key": key, "source": path, "error": f"{type(exc).__name__}: {exc}"}
    data = doc.to_json_dict()
    data.pop("evidence", None)
    return {"key": key, "source": path, **data}


@dataclass
class BatchReport:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


def run_batch(
    spec: str,
    out: Path,
    *,
    kind: str = "auto",
    engine: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> BatchReport:
    """Extract every file under ``spec`` into ``out`` (JSONL), resuming from what ``out`` holds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    finished = done_keys(out)
    todo: list[tuple[str, str]] = []
    report = BatchReport()
    for path in expand_inputs(spec):
        if not path.is_file():
            report.failed += 1
            report.failures.append((str(path), "no such file"))
            continue
        key = input_key(path)
        if key in finished:
            report.skipped += 1
        else:
            todo.append((str(path), key))
    workers = max(1, workers or min(len(todo), os.cpu_count() or 1) or 1)
    total = len(todo)
    with open(out, "a", encoding="utf-8") as sink:
        if workers == 1:
            for path, key in todo:
                _write(sink, _extract_one(path, key, kind, engine), report)
                if progress:
                    progress(report.done + report.failed, total, path)
            return report
        with ProcessPoolExecutor(max_workers=workers, initializer=_quiet_worker) as pool:
            pending: dict[Future[dict[str, Any]], str] = {}
            queue = iter(todo)
            for path, key in queue:  # keep at most 2 files per worker in flight: memory stays bounded
                pending[pool.submit(_extract_one, path, key, kind, engine)] = path
                if len(pending) >= workers * 2:
                    break
            while pending:
                finished_now, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished_now:
                    path = pending.pop(fut)
                    try:
                        record = fut.result()
                    except Exception as exc:  # a worker that died (out of memory, a crash in a codec)
                        record = {"key": None, "source": path, "error": f"worker failed: {exc}"}
                    _write(sink, record, report)
                    if progress:
                        progress(report.done + report.failed, total, path)
                    nxt = next(queue, None)
                    if nxt:
                        pending[pool.submit(_extract_one, nxt[0], nxt[1], kind, engine)] = nxt[0]
    return report


def _write(sink: Any, record: dict[str, Any], report: BatchReport) -> None:
    sink.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    sink.flush()
    if "error" in record:
        report.failed += 1
        report.failures.append((record["source"], record["error"]))
    else:
        report.done += 1


def _quiet_worker() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
