"""Provenance: how every generated file was made, kept beside it and inside it.

Each output ``name.ext`` gets a sidecar ``name.ext.json``: ``{"file": {...}, "provenance": {...}}``.
The provenance record holds the source (caption, headlines or photo), the writer (model, prompt
version, instructions), the written prompt, the generator (provider, model, version), its inputs,
the seed, the job ids, timings, the estimated cost and when it was made. A PNG also carries the
same provenance JSON in an ``iTXt`` chunk (keyword ``vision-provenance``), inserted without
re-encoding the pixels. ``index.jsonl`` in the output directory lists everything made, one line
per file. API keys never appear: every text is passed through :func:`~vision.errors.redact` with
the configured keys.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

from ..config import Config, get_config
from ..errors import redact

SCHEMA = "vision-toolkit/provenance/1"
PNG_KEYWORD = "vision-provenance"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INDEX_NAME = "index.jsonl"
_INDEX_LOCK = threading.Lock()


def configured_secrets(config: Config | None = None) -> list[str]:
    """Every API key the configured providers would use (to scrub from what is written)."""
    config = config or get_config()
    return [k for p in config.providers.values() if (k := p.api_key())]


def scrub(value: Any, secrets: list[str]) -> Any:
    """``value`` (JSON-like) with secrets and key-shaped strings removed from every string."""
    if isinstance(value, str):
        return redact(value, *secrets)
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    return value


def dumps(record: Any, *, indent: int | None = None) -> str:
    return json.dumps(record, ensure_ascii=False, indent=indent, default=str, sort_keys=False)


# -- PNG text chunk ----------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def embed_png(png: bytes, text: str, keyword: str = PNG_KEYWORD) -> bytes:
    """``png`` with an uncompressed UTF-8 ``iTXt`` chunk holding ``text``, inserted before ``IEND``."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    end = png.rfind(b"IEND")
    if end < 12:
        raise ValueError("PNG without an IEND chunk")
    data = keyword.encode("latin-1") + b"\x00" + b"\x00\x00" + b"\x00" + b"\x00" + text.encode("utf-8")
    at = end - 4  # the IEND chunk starts with its 4-byte length
    return png[:at] + _chunk(b"iTXt", data) + png[at:]


def read_png_text(path: str | Path, keyword: str = PNG_KEYWORD) -> str | None:
    """The ``iTXt``/``tEXt`` text stored under ``keyword`` in a PNG file, if any."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        return None
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind in {b"iTXt", b"tEXt"}:
            key, _, rest = body.partition(b"\x00")
            if key.decode("latin-1") == keyword:
                if kind == b"tEXt":
                    return rest.decode("latin-1")
                compressed, _method = rest[0], rest[1]
                _lang, _, rest = rest[2:].partition(b"\x00")
                _translated, _, text = rest.partition(b"\x00")
                return (zlib.decompress(text) if compressed else text).decode("utf-8")
        if kind == b"IEND":
            break
        pos += 12 + length
    return None


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance of a generated file: its sidecar's ``provenance`` (else the PNG chunk)."""
    p = Path(path)
    sidecar = sidecar_path(p)
    if sidecar.is_file():
        return json.loads(sidecar.read_text(encoding="utf-8"))["provenance"]  # type: ignore[no-any-return]
    text = read_png_text(p)
    if text is None:
        raise FileNotFoundError(f"no provenance for {p} (no {sidecar.name} and no PNG text chunk)")
    return json.loads(text)  # type: ignore[no-any-return]


# -- sidecars and the index -----------------------------------------------------------------------------


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write_sidecar(path: Path, file_info: dict[str, Any], record: dict[str, Any]) -> Path:
    from ..util import atomic_write_text

    return atomic_write_text(sidecar_path(path), dumps({"file": file_info, "provenance": record}, indent=2) + "\n")


def append_index(out_dir: Path, entry: dict[str, Any]) -> Path:
    """Append one line to ``out_dir/index.jsonl`` (one ``write`` of a whole line, flushed and synced)."""
    index = out_dir / INDEX_NAME
    line = (dumps(entry) + "\n").encode("utf-8")
    with _INDEX_LOCK:
        fd = os.open(index, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    return index


def read_index(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every entry of ``out_dir/index.jsonl`` (a torn last line from a crash is skipped)."""
    index = Path(out_dir) / INDEX_NAME
    if not index.is_file():
        return []
    out = []
    for line in index.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
