"""A small threaded HTTP/1.1 server with routing, chunked streaming and fault injection.

Built on the standard library so that ``vision.testing`` needs nothing extra: the real ``openai``
(httpx2) and ``replicate`` (httpx) clients talk to it over a real socket on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    received_at: float = field(default_factory=time.time)

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body)

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


@dataclass
class Response:
    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    drop_after: int | None = None  # close the connection after this many body bytes
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), self.content_type or "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return bytes(self.body), self.content_type or "application/octet-stream"


@dataclass
class StreamResponse:
    """A chunked response whose body is produced while it is sent (SSE, MJPEG)."""

    chunks: Iterable[bytes]
    content_type: str = "text/event-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    drop_after_chunks: int | None = None  # close mid-stream after this many chunks


Handler = Callable[[Request], "Response | StreamResponse"]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
        self.routes.append((method, re.compile(regex), handler))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        path_known = False
        for m, regex, handler in self.routes:
            found = regex.match(path)
            if found:
                path_known = True
                if m == method:
                    return handler, found.groupdict(), True
        return None, {}, path_known


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        req = Request(self.command, url.path, parse_qs(url.query),
                      {k.lower(): v for k, v in self.headers.items()}, body)
        handler, params, path_known = self.server.router.match(self.command, url.path)
        req.params = params
        try:
            if handler is None:
                status = 405 if path_known else 404
                message = f"no route {req.method} {req.path}"
                resp: Response | StreamResponse = Response(
                    status, {"error": {"message": message, "type": "invalid_request_error"}})
            else:
                resp = handler(req)
        except Exception as exc:  # a bug in a fake handler must not hang the client
            log.exception("fake server handler failed")
            resp = Response(500, {"error": {"message": f"fake server error: {exc}", "type": "server_error"}})
        if isinstance(resp, StreamResponse):
            self._send_stream(resp)
        else:
            self._send(resp)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

    def _read_chunked(self) -> bytes:
        out = b""
        while True:
            size = int(self.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    def _send(self, resp: Response) -> None:
        if resp.delay:
            time.sleep(resp.delay)
        data, ctype = resp.encoded()
        self.send_response(resp.status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if resp.drop_after is not None:
            self.wfile.write(data[: resp.drop_after])
            self.wfile.flush()
            self._drop()
            return
        self.wfile.write(data)

    def _send_stream(self, resp: StreamResponse) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-store")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        sent = 0
        try:
            for chunk in resp.chunks:
                if resp.drop_after_chunks is not None and sent >= resp.drop_after_chunks:
                    self._drop()
                    return
                if chunk:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                sent += 1
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            close = getattr(resp.chunks, "close", None)
            if close:
                close()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    router: Router

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address, exc)
            return
        log.exception("fake server: error while serving %s", client_address)


class HttpServer:
    """Serve a :class:`Router` on ``host:port`` (port 0 picks a free one) in a background thread."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.router = router
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"vision-testing-{self.port}", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)


def sse(data: str, event: str | None = None, event_id: str | None = None) -> bytes:
    """One server-sent event (data may span lines)."""
    lines = []
    if event:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {part}" for part in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def paced(chunks: Iterable[bytes], interval: float) -> Iterator[bytes]:
    for i, chunk in enumerate(chunks):
        if i and interval:
            time.sleep(interval)
        yield chunk
