"""Small helpers shared across modules: atomic file writes, hashing, lazy optional imports."""

from __future__ import annotations

import hashlib
import importlib
import os
import secrets
import tempfile
from pathlib import Path
from types import ModuleType

from .errors import MissingExtraError


def atomic_write_bytes(path: str | Path, data: bytes, *, private: bool = True) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, and rename it into place.

    A crash or a full disk never leaves a half-written file at ``path``, only a hidden
    ``.NAME.*.part`` beside it. ``private``: readable by this user only (0600); else the umask's
    mode, like any new file (outputs others may read: galleries, batch results).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if private:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
        out = os.fdopen(fd, "wb")
    else:
        tmp = str(p.with_name(f".{p.name}.{secrets.token_hex(4)}.part"))
        out = open(tmp, "xb")  # noqa: SIM115 - closed by the with below
    try:
        with out as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def atomic_write_text(path: str | Path, text: str, *, private: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), private=private)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def require(module: str, *, extra: str, feature: str, package: str | None = None) -> ModuleType:
    """Import an optional dependency or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, feature, package or module) from exc
