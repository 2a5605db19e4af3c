"""Process-wide HTTP clients, one per endpoint and key, closed at exit.

Sharing a client keeps its connection pool warm across conversations and council members, and
means a model object that goes out of scope never leaves an unclosed socket behind.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Hashable
from typing import Any

_CLIENTS: dict[Hashable, tuple[Any, Callable[[Any], None]]] = {}
_LOCK = threading.Lock()


def shared_client(key: Hashable, factory: Callable[[], Any], close: Callable[[Any], None]) -> Any:
    """The client for ``key``, built by ``factory`` on first use; ``close`` runs at exit."""
    with _LOCK:
        entry = _CLIENTS.get(key)
        if entry is None:
            entry = (factory(), close)
            _CLIENTS[key] = entry
        return entry[0]


def close_all() -> None:
    with _LOCK:
        entries = list(_CLIENTS.values())
        _CLIENTS.clear()
    for client, close in entries:
        try:
            close(client)
        except Exception:  # closing at exit must never raise
            pass


atexit.register(close_all)
