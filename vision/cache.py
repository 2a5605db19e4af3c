"""An opt-in answer cache: the same images, prompt, model and options cost once.

The key is a SHA-256 over the model name, the endpoint, every message's role and text, the SHA-256
of every image exactly as sent, and the options that change the answer. Enable it with
``cache=True`` (library), ``--cache`` (CLI) or ``cache = true`` / ``VISION_CACHE=1``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any


def cache_key(parts: dict[str, Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, created_at REAL NOT NULL, value TEXT NOT NULL)"
        )
        return conn

    def get(self, key: str) -> dict[str, Any] | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        conn = self._connect()
        try:
            with conn:
                conn.execute("INSERT OR REPLACE INTO answers(key, created_at, value) VALUES (?,?,?)",
                             (key, time.time(), json.dumps(value, default=str)))
        finally:
            conn.close()

    def clear(self) -> int:
        conn = self._connect()
        try:
            with conn:
                n = int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
                conn.execute("DELETE FROM answers")
        finally:
            conn.close()
        return n
