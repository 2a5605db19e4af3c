"""Camera sources behind one interface, each read by a background thread with latest-frame semantics.

:func:`open_camera` (or :class:`Camera`) takes any of:

* a webcam by index (``0``, ``"0"``) or device path (``"/dev/video2"``);
* a video file (anything this OpenCV build's FFmpeg decodes);
* an RTSP (or RTMP, SRT, UDP) URL, read by FFmpeg with open and read timeouts, so a dead camera
  gives an error instead of a hang;
* an HTTP(S) MJPEG stream (``multipart/x-mixed-replace``, what phone "IP webcam" apps serve) or an
  HTTP(S) URL that returns one JPEG per request (a snapshot URL, polled);
* a folder of images (in natural name order), or one still image (a one-frame source).

Live sources (webcams and network cameras) are read as fast as they deliver; the consumer always
gets the newest frame, and frames it had no time for are dropped, never queued. Files and folders
are read at the consumer's own pace by default: no frame is skipped however slow the consumer is,
and frame timestamps follow the file's own clock (the open time plus the frame's position), so what
happens to a video does not depend on the machine's speed. ``realtime=True`` plays a file at its
own frame rate like a camera instead (stale frames dropped).

Network sources reconnect with exponential backoff when the stream drops, and give up with a
:class:`~vision.errors.CameraError` after ``give_up_after`` seconds without a frame. Every failure
is a ``CameraError`` whose ``source`` names the camera (with any password in a URL masked).

>>> with open_camera("assets/book_cover.png") as cam:
...     frame = cam.read()
>>> frame.size, frame.index
((1200, 1800), 0)
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cv2
import numpy as np

from .errors import CameraError
from .frame import Frame, sniff_format

log = logging.getLogger(__name__)

# FFmpeg's own messages go straight to stderr ("[tcp @ 0x...] Connection refused"); every failure is
# reported as a CameraError instead. Read once, when FFmpeg is first used: set it to 32 to see them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

SourceSpec = int | str | Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".avif"}
STREAM_SCHEMES = {"rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "tcp"}
HTTP_SCHEMES = {"http", "https"}
MAX_PART_BYTES = 20 * 1024 * 1024  # one MJPEG part (one JPEG) larger than this is not a camera frame
READ_AHEAD = 4  # frames of a file decoded ahead of the consumer (fewer thread switches on one core)
FOLDER_FPS = 1.0  # a folder of images plays one image per second of source time
_SECRET_PARAMS = re.compile(r"(?i)(pass|pwd|token|key|secret|auth|sig|session)")


@dataclass(eq=False)
class CameraFrame(Frame):
    """A :class:`~vision.frame.Frame` from a camera, with its sequence number in the source."""

    index: int = 0


@dataclass
class CameraStats:
    """What the reader thread has done so far."""

    frames_read: int = 0  # read from the source
    frames_delivered: int = 0  # taken by the consumer
    frames_dropped: int = 0  # replaced by a newer frame before the consumer took them (live sources)
    frames_skipped: int = 0  # left out to honour the requested frame rate
    frames_corrupt: int = 0  # could not be decoded and were skipped
    reconnects: int = 0
    last_error: str | None = None
    started_at: float = field(default_factory=time.time)


def display_name(source: SourceSpec) -> str:
    """How a source is named in messages and logs: URLs lose their password and secret parameters."""
    if isinstance(source, int):
        return f"camera {source}"
    text = str(source)
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "***" if _SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return re.sub(r"//[^/@]*@", "//***@", text)


def _url_secrets(url: str) -> tuple[str, ...]:
    """The parts of a URL that must never be shown: its password and secret query values."""
    if "://" not in url:
        return ()
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
        found += [v for k, v in parse_qsl(parts.query) if v and _SECRET_PARAMS.search(k)]
    except ValueError:
        return ()
    return tuple(sorted((s for s in found if len(s) >= 3), key=len, reverse=True))


@contextlib.contextmanager
def _cv_quiet() -> Iterator[None]:
    """Silence OpenCV's own stderr warnings while opening: failures become one CameraError instead."""
    utils = getattr(getattr(cv2, "utils", None), "logging", None)
    if utils is None:  # pragma: no cover - very old OpenCV
        yield
        return
    old = utils.getLogLevel()
    utils.setLogLevel(utils.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        utils.setLogLevel(old)


class _Dropped(Exception):
    """The source stopped delivering (network drop, unplugged camera); the reader may reconnect."""


# -- backends: how frames are read (used by the reader thread only, after the first open) ----------------


class _Backend:
    kind = ""
    live = False  # frames arrive in real time and stale ones are dropped
    stills = False  # every frame is a separate photo (folder, image)
    seekable = False  # can be rewound (for loop=True)

    def __init__(self, name: str, secrets: tuple[str, ...] = ()) -> None:
        self.name = name
        self.secrets = secrets  # never shown: a URL's password and secret parameters
        self.fps: float | None = None
        self.size: tuple[int, int] | None = None
        self.corrupt = 0  # frames that could not be decoded and were skipped

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next BGR frame and its time in the source (seconds, or None for live sources);
        ``None`` at the end; raises :class:`_Dropped` when a live source stops delivering."""
        raise NotImplementedError

    def rewind(self) -> None:
        self.close()
        self.open()

    def interrupt(self) -> None:
        """Wake a read blocked in another thread (called by :meth:`Camera.close`)."""

    def close(self) -> None:
        raise NotImplementedError

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def error(self, message: str) -> CameraError:
        return CameraError(self.scrub(message), source=self.name)


class _CvBackend(_Backend):
    """cv2.VideoCapture: webcams (V4L2 on Linux), video files and FFmpeg network streams."""

    def __init__(self, name: str, target: int | str, kind: str, *, timeout: float,
                 size: tuple[int, int] | None, fps: float | None) -> None:
        super().__init__(name, _url_secrets(target) if isinstance(target, str) else ())
        self.target = target
        self.kind = kind  # "webcam", "video" or "stream"
        self.live = kind in {"webcam", "stream"}
        self.seekable = kind == "video"
        self.timeout = timeout
        self.requested_size = size
        self.requested_fps = fps
        self.cap: Any = None
        self._first: np.ndarray | None = None
        self._index = 0

    def _api(self) -> int:
        if self.kind == "webcam":
            return cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        return cv2.CAP_FFMPEG

    def open(self) -> None:
        if self.kind == "webcam":
            _check_device(self.target, self.name)
        params: list[int] = []
        if self.kind == "stream":
            ms = max(1, int(self.timeout * 1000))
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        with _cv_quiet():
            cap = cv2.VideoCapture(self.target, self._api(), params)
            if not cap.isOpened():
                cap.release()
                raise self.error(self._open_failure())
            if self.kind == "webcam":
                self._configure(cap)
            ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise self.error(self._read_failure())
        self.cap = cap
        self._first = first
        self._index = 0
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        self.size = (first.shape[1], first.shape[0])

    def _configure(self, cap: Any) -> None:
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue adds latency; we want the newest frame
        if self.requested_size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.requested_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.requested_size[1])
        if self.requested_fps:
            cap.set(cv2.CAP_PROP_FPS, self.requested_fps)

    def _open_failure(self) -> str:
        if self.kind == "webcam":
            return "the camera exists but cannot be opened (is another program using it?)"
        if self.kind == "stream":
            return (f"cannot open the stream within {self.timeout:g} s (wrong address, camera offline, "
                    "or a protocol this OpenCV build's FFmpeg does not support)")
        return "not a video this OpenCV build can open (unknown container, or not a video file)"

    def _read_failure(self) -> str:
        if self.kind == "webcam":
            return "the camera opened but gives no frames (in use, or an unsupported pixel format?)"
        if self.kind == "stream":
            return f"the stream opened but sent no decodable frame within {self.timeout:g} s"
        return "no decodable frames: the video's codec is not supported by this OpenCV build, or the file is damaged"

    def read(self) -> tuple[np.ndarray, float | None] | None:
        if self._first is not None:
            frame, self._first = self._first, None
        else:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                if self.live:
                    raise _Dropped("no frame (stream ended or camera disconnected)")
                return None
        t = None if self.live else self._index / (self.fps or 30.0)
        self._index += 1
        return frame, t

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def _check_device(target: int | str, name: str) -> None:
    """On Linux, a clear error for a missing device or one the user may not open, before OpenCV tries."""
    if not sys.platform.startswith("linux"):
        return
    path = Path(f"/dev/video{target}") if isinstance(target, int) else Path(target)
    if not path.exists():
        found = sorted(str(p) for p in Path("/dev").glob("video*"))
        seen = f"cameras found: {', '.join(found)}" if found else "no cameras found (/dev/video* is empty)"
        raise CameraError(f"no such camera ({path} does not exist); {seen}", source=name)
    if not os.access(path, os.R_OK | os.W_OK):
        raise CameraError(
            f"permission denied on {path}: add your user to the 'video' group "
            "(`sudo usermod -aG video $USER`, then log in again)", source=name,
        )


class _HttpBackend(_Backend):
    """HTTP(S) cameras: an MJPEG stream (multipart/x-mixed-replace), or a URL that returns one JPEG per
    request (polled). Read with httpx; the socket is shut down to interrupt a blocked read."""

    kind = "mjpeg"
    live = True

    def __init__(self, name: str, url: str, *, timeout: float, fps: float | None) -> None:
        super().__init__(name, _url_secrets(url))
        self.url = url
        self.timeout = timeout
        self.poll_fps = fps or 5.0
        self._client: Any = None
        self._resp: Any = None
        self._parts: Iterator[bytes] | None = None
        self._snapshot: bytes | None = None
        self._first: np.ndarray | None = None
        self._next_poll = 0.0
        self._lock = threading.Lock()

    def open(self) -> None:
        """Connect and decode the first frame, so a URL that is not a camera fails here."""
        self._connect()
        try:
            for _ in range(5):
                try:
                    data = self._next_part()
                except _Dropped as exc:
                    raise self.error(f"the stream ended before its first frame ({exc})") from exc
                frame = _decode(data)
                if frame is not None:
                    self._first = frame
                    self.size = (frame.shape[1], frame.shape[0])
                    return
            raise self.error("the stream's parts are not images this machine can decode")
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        import httpx

        self.close()
        client = httpx.Client(timeout=httpx.Timeout(self.timeout), follow_redirects=True, max_redirects=5)
        try:
            resp = client.send(client.build_request(
                "GET", self.url, headers={"Accept": "multipart/x-mixed-replace, image/jpeg;q=0.9, */*;q=0.1"}),
                stream=True)
        except httpx.TimeoutException as exc:
            client.close()
            raise self.error(f"no answer within {self.timeout:g} s") from exc
        except httpx.ConnectError as exc:
            client.close()
            raise self.error(f"cannot connect ({_reason(exc)})") from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            client.close()
            raise self.error(f"bad URL ({_reason(exc)})") from exc
        except httpx.HTTPError as exc:
            client.close()
            raise self.error(f"request failed ({_reason(exc)})") from exc
        try:
            self._check_response(resp)
        except BaseException:
            resp.close()
            client.close()
            raise
        if self._snapshot is not None:  # the whole answer is read: nothing to keep open
            resp.close()
            client.close()
            return
        with self._lock:
            self._client, self._resp = client, resp

    def _check_response(self, resp: Any) -> None:
        if resp.status_code in (401, 403):
            raise self.error(f"HTTP {resp.status_code}: the camera wants a user name and password "
                             "(put them in the URL: http://user:password@host:port/path)")
        if resp.status_code != 200:
            raise self.error(f"HTTP {resp.status_code} {resp.reason_phrase}".rstrip())
        ctype = resp.headers.get("content-type", "")
        main = ctype.split(";")[0].strip().lower()
        if main.startswith("multipart/"):
            self.kind = "mjpeg"
            boundary = _boundary(ctype)
            self._parts = iter_mjpeg(resp.iter_raw(), boundary, source=self.name)
            self._snapshot = None
        elif main.startswith("image/") or main in {"application/octet-stream", ""}:
            length = resp.headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_PART_BYTES:
                raise self.error(f"a snapshot of {int(length) / 1e6:.0f} MB is too large for a camera frame")
            self.kind = "snapshot"
            data = resp.read()
            if len(data) > MAX_PART_BYTES:
                raise self.error(f"a snapshot of {len(data) / 1e6:.0f} MB is too large for a camera frame")
            self._snapshot = data
            self._parts = None
        else:
            raise self.error(f"the URL serves {main}, not an MJPEG stream (multipart/x-mixed-replace) or "
                             "a JPEG snapshot; check the path (IP webcam apps usually serve /video or /mjpeg)")

    def read(self) -> tuple[np.ndarray, float | None] | None:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame, None
        while True:
            data = self._next_part()
            frame = _decode(data)
            if frame is not None:
                self.size = (frame.shape[1], frame.shape[0])
                return frame, None
            log.debug("%s: skipped a part that is not a decodable image (%d bytes)", self.name, len(data))
            self.corrupt += 1

    def _next_part(self) -> bytes:
        import httpx

        if self._snapshot is not None:  # the open request's answer first
            data, self._snapshot = self._snapshot, None
            self._next_poll = time.monotonic() + 1 / self.poll_fps
            return data
        if self._parts is None:  # snapshot mode: poll the URL again
            wait = self._next_poll - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                self._connect()
            except CameraError as exc:
                raise _Dropped(exc.message) from exc
            return self._next_part()
        try:
            return next(self._parts)
        except StopIteration:
            raise _Dropped("the server ended the stream") from None
        except (httpx.HTTPError, OSError) as exc:
            raise _Dropped(_reason(exc)) from exc

    def interrupt(self) -> None:
        with self._lock:
            resp = self._resp
        if resp is None:
            return
        stream = resp.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            resp, client = self._resp, self._client
            self._resp = self._client = None
        self._parts = None
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.close()
        if client is not None:
            client.close()


def _decode(data: bytes) -> np.ndarray | None:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    for pattern, friendly in ((r"Connection refused", "connection refused"),
                              (r"Name or service not known|nodename nor servname|getaddrinfo failed",
                               "unknown host name"),
                              (r"timed out", "timed out")):
        if re.search(pattern, text):
            return friendly
    return text


def _boundary(content_type: str) -> bytes | None:
    match = re.search(r'boundary="?([^";,]+)"?', content_type, re.I)
    if not match:
        return None
    value = match.group(1).strip()
    return value[2:].encode() if value.startswith("--") else value.encode()


def iter_mjpeg(chunks: Iterator[bytes], boundary: bytes | None, *, source: str = "<stream>",
               max_part: int = MAX_PART_BYTES) -> Iterator[bytes]:
    """The parts (JPEG bytes) of a ``multipart/x-mixed-replace`` body, given its raw chunks.

    Uses each part's ``Content-Length`` when present, else the next boundary; without a boundary
    (some cameras omit it) JPEG start and end markers delimit the frames.
    """
    buf = bytearray()
    it = iter(chunks)

    def more() -> bool:
        chunk = next(it, None)
        if chunk is None:
            return False
        buf.extend(chunk)
        if len(buf) > 2 * max_part + 4096:
            raise CameraError(f"an MJPEG part is larger than {max_part / 1e6:.0f} MB; not a camera stream",
                              source=source)
        return True

    if boundary is None:
        yield from _iter_jpeg_markers(buf, more)
        return
    delimiter = b"--" + boundary
    while True:
        start = buf.find(delimiter)
        while start < 0:
            del buf[: max(0, len(buf) - len(delimiter))]
            if not more():
                return
            start = buf.find(delimiter)
        end_headers = buf.find(b"\r\n\r\n", start)
        while end_headers < 0:
            if not more():
                return
            end_headers = buf.find(b"\r\n\r\n", start)
        headers = bytes(buf[start + len(delimiter): end_headers]).decode("latin-1")
        body_start = end_headers + 4
        length_match = re.search(r"(?im)^content-length:\s*(\d+)", headers)
        if length_match:
            length = int(length_match.group(1))
            if length > max_part:
                raise CameraError(f"an MJPEG part of {length} bytes is too large", source=source)
            while len(buf) < body_start + length:
                if not more():
                    return
            part = bytes(buf[body_start: body_start + length])
            del buf[: body_start + length]
        else:
            nxt = buf.find(delimiter, body_start)
            while nxt < 0:
                if not more():
                    return
                nxt = buf.find(delimiter, body_start)
            part = bytes(buf[body_start:nxt]).rstrip(b"\r\n")
            del buf[:nxt]
        if part:
            yield part


def _iter_jpeg_markers(buf: bytearray, more: Any) -> Iterator[bytes]:
    while True:
        start = buf.find(b"\xff\xd8")
        while start < 0:
            del buf[: max(0, len(buf) - 1)]
            if not more():
                return
            start = buf.find(b"\xff\xd8")
        end = buf.find(b"\xff\xd9", start + 2)
        while end < 0:
            if not more():
                return
            end = buf.find(b"\xff\xd9", start + 2)
        yield bytes(buf[start: end + 2])
        del buf[: end + 2]


class _FolderBackend(_Backend):
    """A folder of images in natural name order, or one image. Unreadable files are skipped with a warning."""

    stills = True
    seekable = True

    def __init__(self, name: str, paths: list[Path], kind: str, *, fps: float | None) -> None:
        super().__init__(name)
        self.paths = paths
        self.kind = kind  # "folder" or "image"
        self.fps = fps or FOLDER_FPS
        self._pos = 0
        self._first: Frame | None = None

    def open(self) -> None:
        self._pos = 0
        if self.kind == "image":  # a still image must decode, or it is an error, not an empty source
            self._first = self._load(self.paths[0], strict=True)

    def _load(self, path: Path, *, strict: bool) -> Frame | None:
        from .errors import ImageError, MissingExtraError

        try:
            return Frame.from_path(path)
        except (ImageError, MissingExtraError) as exc:
            if strict:
                raise self.error(f"cannot read the image: {exc}") from exc
            log.warning("%s: skipped %s: %s", self.name, path.name, exc)
            return None

    def read(self) -> tuple[np.ndarray, float | None] | None:
        while self._pos < len(self.paths):
            pos = self._pos
            self._pos += 1
            first, self._first = self._first, None
            frame = first if pos == 0 and first is not None else self._load(self.paths[pos], strict=False)
            if frame is not None:
                self.size = frame.size
                return frame.to_bgr(), pos / self.fps
        return None

    def close(self) -> None:
        self._first = None


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


# -- choosing a backend ---------------------------------------------------------------------------------


def _backend_for(source: SourceSpec, *, timeout: float, size: tuple[int, int] | None,
                 fps: float | None) -> _Backend:
    name = display_name(source)
    if isinstance(source, bool):
        raise TypeError("a camera source is an index, a path or a URL, not a bool")
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        index = int(source)
        if index < 0:
            raise CameraError("a camera index cannot be negative", source=name)
        return _CvBackend(f"camera {index}", index, "webcam", timeout=timeout, size=size, fps=fps)
    text = str(source).strip()
    if not text:
        raise CameraError("empty source: give a camera index, a file, a folder or a URL", source="''")
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme == "file":
            return _backend_for(urlsplit(text).path, timeout=timeout, size=size, fps=fps)
        try:
            host = urlsplit(text).hostname
        except ValueError as exc:
            raise CameraError(f"bad URL ({exc})", source=name) from exc
        if scheme in HTTP_SCHEMES | STREAM_SCHEMES and not host:
            raise CameraError("bad URL: no host name", source=name)
        if scheme in HTTP_SCHEMES:
            return _HttpBackend(name, text, timeout=timeout, fps=fps)
        if scheme in STREAM_SCHEMES:
            return _CvBackend(name, text, "stream", timeout=timeout, size=size, fps=fps)
        raise CameraError(f"unsupported URL scheme {scheme!r}: use http(s) for MJPEG, rtsp for RTSP cameras",
                          source=name)
    path = Path(text).expanduser()
    if text.startswith("/dev/"):
        return _CvBackend(text, text, "webcam", timeout=timeout, size=size, fps=fps)
    if not path.exists():
        raise CameraError("no such file or folder", source=name)
    if path.is_dir():
        try:
            files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        except PermissionError as exc:
            raise CameraError("permission denied", source=name) from exc
        if not files:
            raise CameraError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder", source=name)
        return _FolderBackend(name, sorted(files, key=_natural_key), "folder", fps=fps)
    try:
        with path.open("rb") as fh:
            head = fh.read(64)
    except PermissionError as exc:
        raise CameraError("permission denied", source=name) from exc
    except OSError as exc:
        raise CameraError(f"cannot read: {exc.strerror or exc}", source=name) from exc
    if not head:
        raise CameraError("empty file (0 bytes)", source=name)
    if sniff_format(head) is not None:
        return _FolderBackend(name, [path], "image", fps=fps)
    return _CvBackend(name, str(path), "video", timeout=timeout, size=size, fps=fps)


# -- the camera: one reader thread, latest-frame semantics -------------------------------------------------


class Camera:
    """Frames from one source, read by a background thread.

    ``read()`` returns the next frame (blocking until there is one): the newest of a live source, the
    next in order of a file; ``None`` at the end of a file. Iterate for every frame until the end.
    Use as a context manager so the device or connection is released::

        with Camera(0, size=(1280, 720), fps=30) as cam:
            for frame in cam:
                ...

    Arguments: ``fps`` caps the frames delivered per second of source time (and asks a webcam for
    that rate); ``size`` asks a webcam for that resolution and fits larger frames of any source
    within it; ``realtime`` plays files at their own frame rate, dropping stale frames like a live
    camera (default: only live sources are real time); ``loop`` restarts a file or folder at its end;
    ``timeout`` bounds opening and each network read; ``reconnect`` and ``give_up_after`` govern
    live sources that stop delivering (retry with backoff from ``backoff[0]`` to ``backoff[1]``
    seconds, then fail with :class:`CameraError`).
    """

    def __init__(
        self,
        source: SourceSpec,
        *,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        realtime: bool | None = None,
        loop: bool = False,
        timeout: float = 10.0,
        reconnect: bool = True,
        give_up_after: float | None = 60.0,
        backoff: tuple[float, float] = (0.25, 8.0),
    ) -> None:
        if fps is not None and fps <= 0:
            raise ValueError("fps must be positive")
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError("size must be (width, height) in pixels")
        if timeout <= 0:
            raise ValueError("timeout must be positive (seconds)")
        self.source = source
        self.fps_cap = fps
        self.size_cap = size
        self.loop = loop
        self.reconnect = reconnect
        self.give_up_after = give_up_after
        self.backoff = backoff
        self._backend = _backend_for(source, timeout=timeout, size=size, fps=fps)
        self.name = self._backend.name
        self.realtime = self._backend.live if realtime is None else realtime
        self.stats = CameraStats()
        self._cond = threading.Condition()
        # live: one slot, a newer frame replaces an untaken one; files: a short read-ahead, never dropped
        self._frames: deque[CameraFrame] = deque()
        self._ended = False
        self._error: CameraError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened_at = 0.0
        self._index = 0

    # -- facts about the source ---------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``webcam``, ``video``, ``stream`` (RTSP...), ``mjpeg``, ``snapshot`` (a polled JPEG URL),
        ``folder`` or ``image``."""
        return self._backend.kind

    @property
    def live(self) -> bool:
        """Whether frames arrive in real time (webcams, network cameras, ``realtime=True`` files)."""
        return self._backend.live or self.realtime

    @property
    def stills(self) -> bool:
        """Whether every frame is a separate photo (a folder of images, a still image)."""
        return self._backend.stills

    @property
    def fps(self) -> float | None:
        """The source's own frame rate when known."""
        return self._backend.fps

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frames read so far."""
        return self._backend.size

    @property
    def ended(self) -> bool:
        with self._cond:
            return self._ended and not self._frames

    # -- life cycle ---------------------------------------------------------------------------------

    def open(self) -> Camera:
        """Open the source (errors are raised here, synchronously) and start the reader thread."""
        if self._thread is not None:
            return self
        self._backend.open()
        self._opened_at = time.time()
        self.stats = CameraStats()
        self._thread = threading.Thread(target=self._run, name=f"camera:{self.name}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the reader and release the device or connection. Safe to call twice."""
        self._stop.set()
        self._backend.interrupt()
        with self._cond:
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=15)
            if thread.is_alive():  # pragma: no cover - a driver that ignores its timeouts
                log.warning("%s: the reader thread did not stop; the device may stay open", self.name)
        else:
            self._backend.close()

    def __enter__(self) -> Camera:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------------

    def read(self, timeout: float | None = None) -> CameraFrame | None:
        """The next frame: the newest one of a live source (those it had no time for are dropped),
        the next in order of a file or folder; ``None`` at the end of a file or folder.

        Raises :class:`CameraError` when the source failed for good, and ``TimeoutError`` when no
        new frame arrived within ``timeout`` seconds.
        """
        if self._thread is None and not self._stop.is_set():
            self.open()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._frames and not self._ended and self._error is None:
                if self._stop.is_set():
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"{self.name}: no new frame within {timeout:g} s")
                self._cond.wait(remaining if remaining is not None else 0.5)
            if self._frames:
                frame = self._frames.popleft()
                self.stats.frames_delivered += 1
                self._cond.notify_all()
                return frame
            if self._error is not None:
                raise self._error
            return None

    def __iter__(self) -> Iterator[CameraFrame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    # -- the reader thread --------------------------------------------------------------------------

    def _run(self) -> None:
        backend = self._backend
        base = self._opened_at  # source time zero of a file, as a wall-clock time
        start_wall: float | None = None  # for realtime playback of files
        next_due: float | None = None
        last_t = base
        try:
            while not self._stop.is_set():
                try:
                    item = backend.read()
                except _Dropped as exc:
                    if self._stop.is_set() or not self._recover(str(exc)):
                        return
                    continue
                except CameraError as exc:
                    self._fail(exc)
                    return
                finally:
                    self.stats.frames_corrupt = backend.corrupt
                if item is None:
                    if self.loop and backend.seekable and self.stats.frames_read:
                        backend.rewind()
                        base = last_t + 1 / (backend.fps or 30.0)  # the clock keeps running across loops
                        start_wall = None
                        continue
                    break
                bgr, media_t = item
                self.stats.frames_read += 1
                timestamp = time.time() if media_t is None else base + media_t
                last_t = timestamp
                if self.fps_cap is not None:
                    if next_due is not None and timestamp < next_due - 0.25 / self.fps_cap:
                        self.stats.frames_skipped += 1
                        continue
                    next_due = max(next_due or timestamp, timestamp) + 1 / self.fps_cap
                if self.realtime and media_t is not None:
                    if start_wall is None:
                        start_wall = time.monotonic() - media_t
                    wait = start_wall + media_t - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        return
                    timestamp = time.time()
                self._deliver(self._to_frame(bgr, timestamp))
        except Exception as exc:  # a bug or a driver failure must reach the consumer, not vanish
            log.debug("%s: reader failed", self.name, exc_info=True)
            self._fail(CameraError(f"reading failed: {exc}", source=self.name))
        finally:
            backend.close()
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _to_frame(self, bgr: np.ndarray, timestamp: float) -> CameraFrame:
        if self.size_cap is not None:
            h, w = bgr.shape[:2]
            scale = min(self.size_cap[0] / w, self.size_cap[1] / h)
            if scale < 1:
                bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                                 interpolation=cv2.INTER_AREA)
        frame = CameraFrame.from_bgr(bgr, source=self.name, timestamp=timestamp)
        frame.index = self._index
        self._index += 1
        return frame

    def _deliver(self, frame: CameraFrame) -> None:
        with self._cond:
            if self.live:
                if self._frames:
                    self.stats.frames_dropped += len(self._frames)
                    self._frames.clear()
            else:  # files at their own pace: wait for the consumer, never drop
                while len(self._frames) >= READ_AHEAD and not self._stop.is_set():
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
            self._frames.append(frame)
            self._cond.notify_all()

    def _recover(self, reason: str) -> bool:
        """Reconnect a live source with backoff; False (after recording the error) when giving up."""
        backend = self._backend
        reason = backend.scrub(reason)
        self.stats.last_error = reason
        if not self.reconnect:
            self._fail(CameraError(f"the stream stopped: {reason}", source=self.name))
            return False
        log.warning("%s: %s; reconnecting", self.name, reason)
        backend.close()
        started = time.monotonic()
        delay = self.backoff[0]
        while not self._stop.is_set():
            if self._stop.wait(delay):
                return False
            try:
                backend.open()
            except CameraError as exc:
                self.stats.last_error = exc.message
                waited = time.monotonic() - started
                if self.give_up_after is not None and waited >= self.give_up_after:
                    self._fail(CameraError(
                        f"lost the stream ({reason}) and could not reconnect for {waited:.0f} s: {exc.message}",
                        source=self.name))
                    return False
                log.info("%s: reconnect failed (%s); next try in %.1f s", self.name, exc.message,
                         min(delay * 2, self.backoff[1]))
                delay = min(delay * 2, self.backoff[1])
                continue
            self.stats.reconnects += 1
            log.warning("%s: reconnected", self.name)
            return True
        return False

    def _fail(self, error: CameraError) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()


def open_camera(source: SourceSpec, **kwargs: Any) -> Camera:
    """Open ``source`` (see :class:`Camera` for the arguments); errors are raised here."""
    return Camera(source, **kwargs).open()


def grab(source: SourceSpec, **kwargs: Any) -> CameraFrame:
    """One frame from ``source`` (the first frame of a file; the newest frame of a camera)."""
    with open_camera(source, **kwargs) as cam:
        frame = cam.read(timeout=kwargs.get("timeout", 10.0) + 5)
    if frame is None:
        raise CameraError("the source gave no frame", source=display_name(source))
    return frame


__all__ = ["Camera", "CameraFrame", "CameraStats", "display_name", "grab", "iter_mjpeg", "open_camera"]
