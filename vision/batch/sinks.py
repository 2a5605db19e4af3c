"""Where a batch's results go. Only the driver writes, one record per input key, never twice.

An output directory holds:

* ``results.jsonl``: one JSON line per file done, appended and flushed as each arrives (a crash loses
  at most a line being written; a cut line is ignored and that file is done again);
* ``failures.jsonl``: one line per failed file with its error (compacted at the end of a run to the
  files still failing); failed files are tried again by the next run;
* ``parquet/kind=<kind>/part-*.parquet`` with ``--parquet``: the same records as columns, written a
  part at a time to a hidden temporary file and renamed into place, so a reader never sees a torn
  file; records not yet in a part when a run stops are added by the next run;
* ``_batch.json``: what the batch does (kind, question, model, ...), so a re-run into the same
  directory cannot mix two different tasks;
* ``_unwritten_answers.json``: only after an interrupted run, answers already paid for whose records
  were not written yet; the next run uses them instead of asking again.

``vision extract DIR --jsonl OUT`` uses the same store with one file: failures are lines with an
``error`` field in it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BatchError, MissingExtraError
from ..util import atomic_write_bytes

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
FAILURES = "failures.jsonl"
MANIFEST = "_batch.json"
UNWRITTEN = "_unwritten_answers.json"
PARQUET = "parquet"


def atomic_write(path: Path, data: bytes | str) -> None:
    """An output file written whole or not at all, in the umask's mode (see :func:`vision.util.atomic_write_bytes`)."""
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data, private=False)


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file, skipping lines cut by a crash."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                yield rec


def _end_with_newline(path: Path) -> None:
    """A file whose last line was cut by a crash gets a newline, so the next line starts clean."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) != b"\n":
            fh.write(b"\n")


class ResultStore:
    """The done index, the JSONL results and failures, and optionally Parquet.

    ``failures=None`` writes failures into the results file as lines with an ``error`` field (the
    ``extract --jsonl`` format).
    """

    def __init__(self, results: Path, *, failures: Path | None = None, parquet: Path | None = None,
                 fsync_every: float = 5.0) -> None:
        self.results_path = results
        self.failures_path = failures
        self.parquet = ParquetSink(parquet) if parquet else None
        self.fsync_every = fsync_every
        self._done: dict[str, tuple[str, int | None, int | None]] = {}  # location -> (key, size, mtime_ns)
        self._keys: set[str] = set()
        self.spent_usd = 0.0  # asks already paid for by earlier runs into this output
        self._results: Any = None
        self._failures: Any = None
        self._last_sync = time.monotonic()

    # -- opening ----------------------------------------------------------------------------------

    def open(self) -> ResultStore:
        """Take the output (one writer at a time), read what is done, catch Parquet up with the JSONL."""
        self.results_path.parent.mkdir(parents=True, exist_ok=True)
        self._results = open(self.results_path, "a", encoding="utf-8")  # noqa: SIM115 - open until close()
        try:
            self._open()
        except BaseException:
            for fh in (self._results, self._failures):
                if fh and not fh.closed:
                    fh.close()
            raise
        return self

    def _open(self) -> None:
        _lock_or_refuse(self._results, self.results_path)
        _end_with_newline(self.results_path)
        if self.parquet:
            self.parquet.open()
        for rec in iter_jsonl(self.results_path):
            key, source = rec.get("key"), rec.get("source")
            if not key or "error" in rec or not source:
                continue
            self._keys.add(key)
            self._done[source] = (key, rec.get("bytes"), rec.get("mtime_ns"))
            self.spent_usd += float((rec.get("ask") or {}).get("cost_usd") or 0.0)
            if self.parquet:
                self.parquet.add(rec)  # a record the JSONL has but Parquet lacks (add skips the others)
        if self.failures_path:
            _end_with_newline(self.failures_path)
            self._failures = open(self.failures_path, "a", encoding="utf-8")  # noqa: SIM115 - open until close()

    def __enter__(self) -> ResultStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ----------------------------------------------------------------------------------

    def known_key(self, location: str) -> str | None:
        """The key this location had when it was last done (its bytes decide whether it still is)."""
        entry = self._done.get(location)
        return entry[0] if entry else None

    def unchanged(self, location: str, size: int | None, mtime_ns: int | None) -> bool:
        """Done before, and the listing shows the same size and modification time: skip without reading."""
        entry = self._done.get(location)
        return bool(entry and mtime_ns is not None and entry[1] == size and entry[2] == mtime_ns)

    # -- writing ----------------------------------------------------------------------------------

    def write(self, record: dict[str, Any]) -> bool:
        """Append one record (flushed); False, and nothing written, if its key is already there."""
        key = record["key"]
        if key in self._keys:
            return False
        self._results.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._results.flush()
        self._keys.add(key)
        self._done[record["source"]] = (key, record.get("bytes"), record.get("mtime_ns"))
        if self.parquet:
            self.parquet.add(record)
        self._maybe_sync()
        return True

    def fail(self, source: str, key: str | None, error: str, **extra: Any) -> None:
        line = {"key": key, "source": source, "error": error, **extra}
        sink = self._failures or self._results
        sink.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        sink.flush()
        self._maybe_sync()

    def _maybe_sync(self) -> None:
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_every:
            self._last_sync = now
            for fh in (self._results, self._failures):
                if fh:
                    os.fsync(fh.fileno())

    def close(self) -> None:
        """Flush and sync everything; write the Parquet rows still buffered; compact the failures."""
        for fh in (self._results, self._failures):
            if fh and not fh.closed:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
        if self.parquet:
            self.parquet.close()
        if self.failures_path and self.failures_path.exists():
            self._compact_failures()

    def _compact_failures(self) -> None:
        assert self.failures_path is not None
        latest: dict[str, dict[str, Any]] = {}  # the last failure of each source ...
        for rec in iter_jsonl(self.failures_path):
            if rec.get("source"):
                latest[rec["source"]] = rec
        # ... unless that source has been done since (the same bytes, or unreadable bytes now done)
        still = [r for s, r in latest.items() if not (s in self._done and (r.get("key") in self._keys
                                                                           or r.get("key") is None))]
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in still)
        atomic_write(self.failures_path, text)


def _lock_or_refuse(fh: Any, path: Path) -> None:
    """One writer per output: a second batch into the same place is refused while the first runs."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise BatchError(f"another batch is writing {path} right now; wait for it, or use another --out") from exc


# -- the output directory --------------------------------------------------------------------------


def check_manifest(out: Path, identity: dict[str, Any], fingerprint: str) -> None:
    """Record what this batch does in ``out``; refuse an ``out`` that holds another task."""
    path = out / MANIFEST
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BatchError(f"{path} is unreadable ({exc}); remove it to start this output again") from exc
        if existing.get("fingerprint") != fingerprint:
            theirs = existing.get("task") or {}
            diff = ", ".join(f"{k}: {theirs.get(k)!r} there, {v!r} now" for k, v in identity.items()
                             if theirs.get(k) != v)
            raise BatchError(f"{out} holds the results of another task ({diff}); use another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"task": identity, "fingerprint": fingerprint,
                                        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2) + "\n")


def save_unwritten(out: Path, answers: dict[str, dict[str, Any]]) -> None:
    """Keep the answers paid for but not written (all of them: the run started from any kept before)."""
    if answers:
        atomic_write(out / UNWRITTEN, json.dumps(answers, ensure_ascii=False))
    else:
        clear_unwritten(out)


def load_unwritten(out: Path) -> dict[str, dict[str, Any]]:
    path = out / UNWRITTEN
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("ignoring unreadable %s", path)
        return {}
    return data if isinstance(data, dict) else {}


def clear_unwritten(out: Path) -> None:
    (out / UNWRITTEN).unlink(missing_ok=True)


# -- Parquet ------------------------------------------------------------------------------------------


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingExtraError("dask", "Parquet output", "pyarrow") from exc
    return pa, pq


def document_columns() -> list[str]:
    """Every field of every document kind, in a fixed order (one schema for all partitions)."""
    from ..documents import DOCUMENT_TYPES

    skip = {"kind", "source", "engine", "evidence", "checks", "low_confidence", "warnings", "transcription"}
    cols: list[str] = []
    for model in DOCUMENT_TYPES.values():
        for name in model.model_fields:
            if name not in skip and name not in cols:
                cols.append(name)
    return cols


def parquet_schema() -> Any:
    pa, _ = _pyarrow()
    s, i64, f64 = pa.string(), pa.int64(), pa.float64()
    fields = [("key", s), ("source", s), ("sha256", s), ("bytes", i64), ("engine", s), ("transcription", s)]
    fields += [(c, s) for c in document_columns()]
    fields += [("checks", s), ("checks_failed", pa.int32()), ("low_confidence", s), ("warnings", s),
               ("ask_task", s), ("ask_question", s), ("ask_model", s), ("ask_answer", s), ("ask_cost_usd", f64),
               ("ask_input_tokens", i64), ("ask_output_tokens", i64), ("ask_latency_ms", f64), ("ask_details", s),
               ("seconds", f64), ("worker", s)]
    return pa.schema(fields)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def to_row(record: dict[str, Any], doc_cols: list[str]) -> dict[str, Any]:
    """A record as a Parquet row: scalars as they are, nested values as JSON text."""
    ask = record.get("ask") or {}
    usage = ask.get("usage") or {}
    row: dict[str, Any] = {k: record.get(k) for k in ("key", "source", "sha256", "bytes", "engine", "transcription",
                                                     "seconds", "worker")}
    for c in doc_cols:
        row[c] = _text(record.get(c))
    checks = record.get("checks") or []
    row.update(checks=_text(checks), checks_failed=sum(1 for c in checks if not c.get("passed")),
               low_confidence=_text(record.get("low_confidence")), warnings=_text(record.get("warnings")))
    details = {k: v for k, v in ask.items()
               if k not in {"task", "question", "model", "answer", "cost_usd", "usage", "latency_ms"}}
    row.update(ask_task=ask.get("task"), ask_question=ask.get("question"), ask_model=ask.get("model"),
               ask_answer=ask.get("answer"), ask_cost_usd=ask.get("cost_usd"),
               ask_input_tokens=usage.get("input_tokens"), ask_output_tokens=usage.get("output_tokens"),
               ask_latency_ms=ask.get("latency_ms"), ask_details=_text(details) if details else None)
    return row


class ParquetSink:
    """Partitioned by kind (``kind=receipt/``), one schema everywhere, parts written atomically.

    Rows are buffered and written every ``rows_per_part`` rows or ``seconds`` seconds, so memory
    stays bounded and a long run shows up in Parquet as it goes.
    """

    def __init__(self, directory: Path, *, rows_per_part: int = 5000, seconds: float = 60.0) -> None:
        self.directory = directory
        self.rows_per_part = rows_per_part
        self.seconds = seconds
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._keys: set[str] = set()
        self._run = uuid.uuid4().hex[:8]
        self._seq = 0
        self._last = time.monotonic()

    def open(self) -> None:
        """Read the keys already in Parquet (the store then adds what the JSONL has and Parquet lacks)."""
        _, pq = _pyarrow()
        self.schema = parquet_schema()
        self.doc_cols = document_columns()
        self.directory.mkdir(parents=True, exist_ok=True)
        for tmp in self.directory.rglob(".part-*"):
            tmp.unlink(missing_ok=True)  # left by a crash mid-write: never renamed, never visible
        for part in sorted(self.directory.rglob("part-*.parquet")):
            table = pq.read_table(part, columns=["key"])
            self._keys.update(table.column("key").to_pylist())

    def add(self, record: dict[str, Any]) -> None:
        key = record["key"]
        if key in self._keys:
            return
        self._keys.add(key)
        kind = str(record.get("kind") or "none")
        self._buffers.setdefault(kind, []).append(to_row(record, self.doc_cols))
        pending = sum(len(b) for b in self._buffers.values())
        if pending >= self.rows_per_part or (pending and time.monotonic() - self._last >= self.seconds):
            self.flush()

    def flush(self) -> None:
        pa, pq = _pyarrow()
        for kind, rows in list(self._buffers.items()):
            if not rows:
                continue
            table = pa.Table.from_pylist(rows, schema=self.schema)
            buf = io.BytesIO()
            pq.write_table(table, buf, compression="zstd")
            self._seq += 1
            name = f"part-{time.strftime('%Y%m%d%H%M%S')}-{self._run}-{self._seq:05d}.parquet"
            atomic_write(self.directory / f"kind={kind}" / name, buf.getvalue())
            self._buffers[kind] = []
        self._last = time.monotonic()

    def close(self) -> None:
        self.flush()
