"""Inputs of a batch: directories, globs, single files and fsspec URLs, listed lazily.

A directory is walked one folder at a time (files in name order, then sub-folders), keeping only
images and PDFs; a glob is matched as it is walked; ``scheme://...`` goes through fsspec, so
``s3://bucket/scans/``, ``gs://...``, ``az://...``, ``https://...`` work wherever the user has
installed that fsspec backend (``file://`` and ``memory://`` work everywhere). Nothing is read
here: workers read the bytes, hash them and process them.

Each input's key is ``location#<first 16 hex of its SHA-256>``: the same bytes at the same place
are done once, an edited file is done again.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, ImageError, MissingExtraError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif", ".avif", ".pdf"}
_MAGIC = re.compile(r"[*?\[]")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")


@dataclass(frozen=True)
class InputFile:
    """One input: where it is and what the listing said about it (nothing is read yet)."""

    location: str  # an absolute local path, or a URL fsspec understands
    size: int | None = None
    mtime_ns: int | None = None  # local files only: with the size, lets a re-run skip without reading

    @property
    def name(self) -> str:
        return self.location.rstrip("/").rsplit("/", 1)[-1]


def is_url(spec: str) -> bool:
    """``scheme://...`` (anything but a plain path)."""
    return bool(_URL.match(spec))


def key_for(location: str, sha256: str) -> str:
    """``location#<16 hex>``."""
    return f"{location}#{sha256[:16]}"


def iter_inputs(specs: str | Sequence[str], *, extensions: set[str] | None = EXTENSIONS) -> Iterator[InputFile]:
    """Every input named by ``specs`` (directories, globs, files, URLs), lazily, in a stable order.

    A path that does not exist is yielded as is (the batch reports it as failed). With several
    specs, an input two of them name is yielded once.
    """
    several = not isinstance(specs, str) and len(specs) > 1
    seen: set[str] = set()
    for spec in [specs] if isinstance(specs, str) else specs:
        if not spec:
            raise ValueError("an empty input name")
        if spec.startswith("file://"):
            spec = spec[len("file://"):]
        items = _iter_fsspec(spec, extensions) if is_url(spec) else _iter_local(spec, extensions)
        for item in items:
            if several:
                if item.location in seen:
                    continue
                seen.add(item.location)
            yield item


def _iter_local(spec: str, extensions: set[str] | None) -> Iterator[InputFile]:
    p = Path(spec).expanduser()
    if p.is_dir():
        yield from _walk_local(Path(absolute(p)), extensions)
        return
    if _MAGIC.search(spec):
        for match in glob.iglob(str(Path(spec).expanduser()), recursive=True):
            mp = Path(match)
            if mp.is_file():
                yield _local_file(mp)
        return
    yield _local_file(p)


def _walk_local(root: Path, extensions: set[str] | None) -> Iterator[InputFile]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    subdirs = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.path)
            elif entry.is_file() and (extensions is None or Path(entry.name).suffix.lower() in extensions):
                st = entry.stat()
                yield InputFile(entry.path, st.st_size, st.st_mtime_ns)
        except OSError:
            continue
    for sub in subdirs:
        yield from _walk_local(Path(sub), extensions)


def absolute(p: str | Path) -> str:
    """An absolute, normalised local path (symlinks kept: the key names the path the user gave)."""
    return os.path.normpath(Path(p).expanduser().absolute())


def _local_file(p: Path) -> InputFile:
    path = absolute(p)
    try:
        st = Path(path).stat()
    except OSError:
        return InputFile(path)
    return InputFile(path, st.st_size, st.st_mtime_ns)


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise MissingExtraError("dask", "reading inputs from URLs", "fsspec") from exc
    return fsspec


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and path for ``url``, with a clear error when its backend is missing."""
    fsspec = _fsspec()
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        scheme = url.split("://", 1)[0]
        raise ConfigurationError(
            f"cannot open {url}: no fsspec backend for {scheme}:// ({exc}); install the package that provides it "
            "(s3fs for s3://, gcsfs for gs://, adlfs for az://)") from exc


def _iter_fsspec(url: str, extensions: set[str] | None) -> Iterator[InputFile]:
    fs, path = filesystem(url)
    if _MAGIC.search(path):
        from fsspec.utils import glob_translate

        base = _MAGIC.split(path, 1)[0].rsplit("/", 1)[0] or "/"
        pattern = re.compile(glob_translate(path))
        for root, _dirs, files in fs.walk(base, detail=True):
            for name in sorted(files):
                full = f"{root.rstrip('/')}/{name}"
                if pattern.match(full) or pattern.match(full.lstrip("/")):
                    yield InputFile(fs.unstrip_protocol(full), files[name].get("size"))
        return
    try:
        info = fs.info(path)
    except FileNotFoundError:
        yield InputFile(url)
        return
    if info.get("type") != "directory":
        yield InputFile(fs.unstrip_protocol(path), info.get("size"))
        return
    for root, _dirs, files in fs.walk(path, detail=True):
        for name in sorted(files):
            if extensions is None or Path(name).suffix.lower() in extensions:
                yield InputFile(fs.unstrip_protocol(f"{root.rstrip('/')}/{name}"), files[name].get("size"))


def read_input(location: str, *, max_bytes: int | None = None) -> bytes:
    """The bytes of one input (local path or URL); typed errors for missing, unreadable or too big.

    Read with a bound, not checked with a stat first: no extra request per object in a bucket, and a
    file that grows after the listing is caught all the same.
    """
    limit = -1 if not max_bytes else max_bytes + 1
    try:
        if is_url(location):
            fs, path = filesystem(location)
            with fs.open(path, "rb") as fh:
                data = bytes(fh.read(limit))
        else:
            with open(location, "rb") as fh:
                data = fh.read(limit)
        if max_bytes and len(data) > max_bytes:
            raise ImageError(f"over the {max_bytes / 1e6:.0f} MB limit", source=location)
        return data
    except FileNotFoundError as exc:
        raise ImageError("no such file", source=location) from exc
    except IsADirectoryError as exc:
        raise ImageError("is a directory, not an image file", source=location) from exc
    except OSError as exc:
        raise ImageError(f"cannot read: {exc.strerror or exc}", source=location) from exc


def input_key(path: str | Path) -> str:
    """The key of a local file (``absolute path#sha256[:16]``), reading it."""
    location = absolute(path)
    h = hashlib.sha256()
    with open(location, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return key_for(location, h.hexdigest())
