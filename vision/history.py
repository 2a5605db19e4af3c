"""A SQLite log of every ask: images stored once by SHA-256, prompt, answer, model, usage, cost,
latency and errors. Never an API key (every text passes through :func:`~vision.errors.redact`).

The database lives in the user data directory (``vision models --paths`` shows where); set
``VISION_HISTORY=0`` or ``history = false`` in the config to turn logging off.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import redact

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    mime TEXT NOT NULL,
    width INTEGER, height INTEGER,
    bytes BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'ask',
    conversation_id TEXT,
    created_at REAL NOT NULL,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    system TEXT,
    answer TEXT,
    error TEXT,
    input_tokens INTEGER, output_tokens INTEGER, image_tokens INTEGER,
    cost_usd REAL, estimated_cost_usd REAL,
    latency_ms REAL,
    cached INTEGER NOT NULL DEFAULT 0,
    options TEXT,
    extra TEXT
);
CREATE TABLE IF NOT EXISTS entry_images (
    entry_id TEXT NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    sha256 TEXT NOT NULL REFERENCES images(sha256),
    source TEXT,
    PRIMARY KEY (entry_id, position)
);
CREATE INDEX IF NOT EXISTS entries_created ON entries(created_at);
CREATE INDEX IF NOT EXISTS entries_conversation ON entries(conversation_id);
"""


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    data: bytes
    mime: str = "image/jpeg"
    width: int | None = None
    height: int | None = None
    source: str | None = None


@dataclass(frozen=True)
class Entry:
    id: str
    kind: str
    conversation_id: str | None
    created_at: float
    model: str
    prompt: str
    system: str | None
    answer: str | None
    error: str | None
    input_tokens: int | None
    output_tokens: int | None
    image_tokens: int | None
    cost_usd: float | None
    estimated_cost_usd: float | None
    latency_ms: float | None
    cached: bool
    options: dict[str, Any]
    extra: dict[str, Any]
    images: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["images"] = list(self.images)
        d["created_at_iso"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.created_at))
        return d


class History:
    """The history database at ``path`` (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            with conn:
                yield conn
        finally:
            conn.close()

    def log(
        self,
        *,
        model: str,
        prompt: str,
        answer: str | None = None,
        error: str | None = None,
        images: Sequence[StoredImage] = (),
        system: str | None = None,
        conversation_id: str | None = None,
        kind: str = "ask",
        usage: dict[str, Any] | None = None,
        estimated_cost_usd: float | None = None,
        latency_ms: float | None = None,
        cached: bool = False,
        options: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Record one entry; returns its id."""
        entry_id = uuid.uuid4().hex[:16]
        usage = usage or {}
        now = time.time()
        with self._connect() as conn:
            for img in images:
                conn.execute(
                    "INSERT OR IGNORE INTO images(sha256, mime, width, height, bytes, created_at) VALUES (?,?,?,?,?,?)",
                    (img.sha256, img.mime, img.width, img.height, img.data, now),
                )
            conn.execute(
                "INSERT INTO entries(id, kind, conversation_id, created_at, model, prompt, system, answer, error,"
                " input_tokens, output_tokens, image_tokens, cost_usd, estimated_cost_usd, latency_ms, cached,"
                " options, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    entry_id, kind, conversation_id, now, model, redact(prompt), redact(system) if system else None,
                    redact(answer) if answer is not None else None, redact(error) if error else None,
                    usage.get("input_tokens"), usage.get("output_tokens"), usage.get("image_tokens"),
                    usage.get("cost_usd"), estimated_cost_usd, latency_ms, int(cached),
                    redact(json.dumps(options or {}, default=str)), redact(json.dumps(extra or {}, default=str)),
                ),
            )
            for pos, img in enumerate(images):
                conn.execute("INSERT INTO entry_images(entry_id, position, sha256, source) VALUES (?,?,?,?)",
                             (entry_id, pos, img.sha256, img.source))
        return entry_id

    def list(self, *, limit: int = 20, offset: int = 0, search: str | None = None,
             conversation_id: str | None = None) -> list[Entry]:
        """Newest first."""
        where, args = [], []
        if search:
            where.append("(prompt LIKE ? OR answer LIKE ?)")
            args += [f"%{search}%", f"%{search}%"]
        if conversation_id:
            where.append("conversation_id = ?")
            args.append(conversation_id)
        sql = "SELECT * FROM entries" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC LIMIT ? OFFSET ?"
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(sql, [*args, limit, offset]).fetchall()
            return [self._entry(conn, r) for r in rows]

    def get(self, entry_id: str) -> Entry | None:
        """An entry by id or by a unique id prefix."""
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM entries WHERE id LIKE ? LIMIT 2", (entry_id + "%",)).fetchall()
            if len(rows) != 1:
                return None
            return self._entry(conn, rows[0])

    def image(self, sha256: str) -> StoredImage | None:
        with self._connect() as conn:
            row = conn.execute("SELECT sha256, bytes, mime, width, height FROM images WHERE sha256 = ?",
                               (sha256,)).fetchone()
        return StoredImage(row[0], row[1], row[2], row[3], row[4]) if row else None

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def clear(self) -> int:
        """Delete every entry and image; returns the number of entries deleted."""
        with self._connect() as conn:
            n = int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
            conn.execute("DELETE FROM entry_images")
            conn.execute("DELETE FROM entries")
            conn.execute("DELETE FROM images")
        return n

    @staticmethod
    def _entry(conn: sqlite3.Connection, r: sqlite3.Row) -> Entry:
        images = tuple(x[0] for x in conn.execute(
            "SELECT sha256 FROM entry_images WHERE entry_id = ? ORDER BY position", (r["id"],)))
        return Entry(
            id=r["id"], kind=r["kind"], conversation_id=r["conversation_id"], created_at=r["created_at"],
            model=r["model"], prompt=r["prompt"], system=r["system"], answer=r["answer"], error=r["error"],
            input_tokens=r["input_tokens"], output_tokens=r["output_tokens"], image_tokens=r["image_tokens"],
            cost_usd=r["cost_usd"], estimated_cost_usd=r["estimated_cost_usd"], latency_ms=r["latency_ms"],
            cached=bool(r["cached"]), options=json.loads(r["options"] or "{}"), extra=json.loads(r["extra"] or "{}"),
            images=images,
        )
