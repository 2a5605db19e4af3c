"""`FakeServer`: the OpenAI and Replicate APIs on 127.0.0.1, scriptable, with faults and a record.

Tests (and users' tests) run the real ``openai`` and ``replicate`` clients against it::

    with FakeServer() as server:
        server.script(text="A red apple.")
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
        ...
        assert server.requests[-1].images[0].format == "JPEG"

Replies come, in order of precedence, from :meth:`FakeServer.script` (queued or permanent), from
directives in the model name (so a server started from the shell can be steered too), and from a
deterministic default that names the model and describes what it received.

Model-name directives (anywhere in the name, e.g. ``openai/fake-slow-0.5``):
``slow-<seconds>``, ``error-<status>``, ``flaky-<n>`` (the first n requests get 429),
``refuse``, ``empty``, ``malformed``, ``drop`` (connection closed mid-response), ``novision``,
``fail`` (a Replicate prediction that fails), ``missing`` (404).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .http import HttpServer, Request, Response, Router

FAULTS = ("drop", "malformed", "empty", "refuse", "fail", "novision", "missing")


@dataclass(frozen=True)
class ReceivedImage:
    """An image the server received, decoded from its data URL."""

    format: str | None
    width: int | None
    height: int | None
    size_bytes: int
    sha256: str
    detail: str | None = None
    mime: str | None = None


@dataclass
class RecordedRequest:
    api: str  # "openai", "replicate", "files", "control"
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    received_at: float
    model: str | None = None
    images: list[ReceivedImage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    def to_dict(self) -> dict[str, Any]:
        headers = {k: ("***" if k in {"authorization", "x-api-key"} else v) for k, v in self.headers.items()}
        return {
            "api": self.api, "method": self.method, "path": self.path, "headers": headers, "model": self.model,
            "received_at": self.received_at, "texts": self.texts,
            "images": [i.__dict__ for i in self.images],
        }


@dataclass
class Script:
    """A scripted reply. ``model`` is a glob over the model name (``None`` matches any)."""

    model: str | None = None
    text: str | None = None
    status: int | None = None
    error: str | None = None
    retry_after_ms: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    fault: str | None = None
    times: int | None = 1  # None: every time
    usage: dict[str, int] | None = None
    output: Any = None  # Replicate: the raw prediction output
    logs: str | None = None
    chunk_delay: float = 0.0  # pause between streamed chunks

    def matches(self, model: str | None) -> bool:
        return self.model is None or (model is not None and fnmatch.fnmatchcase(model, self.model))


def directives(model: str | None) -> Script:
    """The reply a model name asks for (see the module docstring)."""
    s = Script(times=None)
    if not model:
        return s
    if m := re.search(r"slow-(\d+(?:\.\d+)?)", model):
        s.delay = float(m.group(1))
    if m := re.search(r"error-(\d{3})", model):
        s.status = int(m.group(1))
    for fault in FAULTS:
        if re.search(rf"(^|[-_/+.:]){fault}($|[-_/+.:])", model):
            s.fault = fault
    return s


def describe_image(data_url: str, detail: str | None = None) -> ReceivedImage:
    """Decode a ``data:`` URL and read its format and size (without trusting the declared type)."""
    header, _, payload = data_url.partition(",")
    mime = header[5:].split(";")[0] if header.startswith("data:") else None
    try:
        raw = base64.b64decode(payload, validate=True)
    except ValueError:
        raw = b""
    fmt = width = height = None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as img:
            fmt, (width, height) = img.format, img.size
    except Exception:
        pass
    return ReceivedImage(fmt, width, height, len(raw), hashlib.sha256(raw).hexdigest(), detail, mime)


class FakeServer:
    """OpenAI- and Replicate-compatible API server for tests, on 127.0.0.1.

    ``require_key``: when set, requests must carry ``Authorization: Bearer <require_key>``;
    any key is accepted otherwise. ``prediction_seconds``: how long a Replicate prediction runs by
    default (``slow-N`` in the model name overrides it).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, require_key: str | None = None,
                 prediction_seconds: float = 0.05, stream_chunk_delay: float = 0.0) -> None:
        from . import generation_fake, openai_fake, replicate_fake

        self.require_key = require_key
        self.prediction_seconds = prediction_seconds
        self.stream_chunk_delay = stream_chunk_delay
        self.requests: list[RecordedRequest] = []
        self._scripts: list[Script] = []
        self._flaky: dict[str, int] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.router = Router()
        openai_fake.register(self)
        replicate_fake.register(self)
        generation_fake.register(self)
        self._register_control()
        self._http = HttpServer(self.router, host, port)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeServer:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._http.serve_forever()

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def replicate_base_url(self) -> str:
        return self.url

    # -- scripting ------------------------------------------------------------------------------

    def script(self, text: str | None = None, **kwargs: Any) -> Script:
        """Queue a reply (``times=1`` by default; ``times=None`` for every matching request)."""
        s = Script(text=text, **kwargs)
        with self._lock:
            self._scripts.append(s)
        return s

    def fail_next(self, n: int = 1, *, status: int = 429, retry_after_ms: int | None = 10,
                  model: str | None = None, error: str | None = None) -> Script:
        """The next ``n`` matching requests fail with ``status`` (429 carries ``retry-after-ms``)."""
        return self.script(status=status, retry_after_ms=retry_after_ms if status == 429 else None,
                           times=n, model=model, error=error)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
            self._flaky.clear()
            self.reset_state()

    def reset_state(self) -> None:
        """Hook for API modules that keep state (predictions, files)."""

    def reply_for(self, model: str | None) -> Script:
        """The reply for a request naming ``model``: a scripted one, else what its name asks for."""
        with self._lock:
            for s in self._scripts:
                if s.matches(model) and (s.times is None or s.times > 0):
                    if s.times is not None:
                        s.times -= 1
                    return s
            self._scripts = [s for s in self._scripts if s.times is None or s.times > 0]
            reply = directives(model)
            if model and (m := re.search(r"flaky-(\d+)", model)):
                seen = self._flaky.get(model, 0)
                self._flaky[model] = seen + 1
                if seen < int(m.group(1)):
                    reply.status, reply.retry_after_ms = 429, 10
            return reply

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def record(self, api: str, req: Request, *, model: str | None = None, images: list[ReceivedImage] | None = None,
               texts: list[str] | None = None) -> RecordedRequest:
        try:
            body = req.json()
        except ValueError:
            body = None
        rec = RecordedRequest(api, req.method, req.path, dict(req.headers), body, req.received_at, model,
                              images or [], texts or [])
        with self._lock:
            self.requests.append(rec)
        return rec

    def requests_for(self, api: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if (api is None or r.api == api) and (path is None or r.path == path)]

    def check_key(self, req: Request) -> bool:
        return self.require_key is None or req.bearer == self.require_key

    # -- control endpoints (for a server started from the shell) --------------------------------

    def _register_control(self) -> None:
        def health(_req: Request) -> Response:
            return Response(200, {"ok": True, "openai_base_url": self.openai_base_url,
                                  "replicate_base_url": self.replicate_base_url})

        def requests(_req: Request) -> Response:
            return Response(200, [r.to_dict() for r in self.requests])

        def script(req: Request) -> Response:
            body = req.json() or {}
            items = body if isinstance(body, list) else [body]
            try:
                for item in items:
                    self.script(**item)
            except TypeError as exc:
                return Response(400, {"error": {"message": str(exc)}})
            return Response(200, {"queued": len(items)})

        def reset(_req: Request) -> Response:
            self.reset()
            return Response(200, {"ok": True})

        self.router.add("GET", "/_control/health", health)
        self.router.add("GET", "/_control/requests", requests)
        self.router.add("POST", "/_control/script", script)
        self.router.add("POST", "/_control/reset", reset)


def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
