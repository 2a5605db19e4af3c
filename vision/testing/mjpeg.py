"""A network camera on 127.0.0.1: a video file, folder, image or generated frames served as MJPEG.

It speaks what phone "IP webcam" apps and most network cameras speak: ``GET /video`` is a
``multipart/x-mixed-replace`` stream of JPEGs, ``GET /shot.jpg`` the current frame. Like a real
camera it has one clock: a producer thread plays the source in real time (looping by default) and
every client gets the newest frame, so a client that reconnects sees the present, not the start.

Fault knobs, for testing reconnects: :meth:`MjpegServer.drop_next` (close the next connections
after N frames), :meth:`MjpegServer.stall_next` (stop sending but keep the connection open),
``drop_after_frames`` (every connection), and :meth:`MjpegServer.stop`.

From the shell::

    python -m vision.testing.mjpeg assets/scenes.mp4 --port 8081   # prints MJPEG_URL=http://127.0.0.1:8081/video
    vision watch --url http://127.0.0.1:8081/video "What is this?"
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import cv2
import numpy as np

from .http import HttpServer, Request, Response, Router, StreamResponse


class MjpegServer:
    """Serve ``source`` (a path Camera can read, or a sequence of RGB arrays / Frames) as MJPEG.

    ``fps``: frames per second (default: the file's own rate, or 10 for arrays); ``loop``: start
    again at the end (otherwise streams end and new requests get 503); ``size``: fit frames within
    (width, height); ``content_length``: send a Content-Length header with each part (some cameras
    do not; the client must then find the boundary); ``boundary``: the multipart boundary.
    """

    def __init__(
        self,
        source: str | Path | Sequence[Any],
        *,
        fps: float | None = None,
        loop: bool = True,
        quality: int = 80,
        size: tuple[int, int] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        boundary: str = "vision-frame",
        content_length: bool = True,
        drop_after_frames: int | None = None,
    ) -> None:
        if fps is not None and fps <= 0:
            raise ValueError("fps must be positive")
        self.source = source
        self.fps = fps
        self.loop = loop
        self.quality = quality
        self.size = size
        self.boundary = boundary
        self.content_length = content_length
        self.drop_after_frames = drop_after_frames
        self.connections = 0  # requests to /video so far
        self.frames_produced = 0
        self._drops: list[int] = []  # frames after which the next connections drop
        self._stalls: list[int] = []
        self._jpeg: bytes | None = None
        self._seq = 0
        self._ended = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._producer: threading.Thread | None = None
        self._error: Exception | None = None
        self.router = Router()
        self.router.add("GET", "/video", self._video)
        self.router.add("GET", "/mjpeg", self._video)
        self.router.add("GET", "/shot.jpg", self._shot)
        self.router.add("GET", "/", self._index)
        self._host, self._port = host, port
        self._http: HttpServer | None = None  # listening from start() on

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> MjpegServer:
        """Start producing frames and serving; returns once the first frame is ready.

        A source that cannot be read raises its :class:`~vision.errors.CameraError` here.
        """
        camera = None
        if isinstance(self.source, (str, Path)):
            from ..camera import Camera

            camera = Camera(self.source, realtime=True, loop=self.loop, fps=self.fps).open()
        self._producer = threading.Thread(target=self._produce, args=(camera,), name="mjpeg-producer", daemon=True)
        self._producer.start()
        with self._cond:
            self._cond.wait_for(lambda: self._jpeg is not None or self._ended, timeout=30)
        if self._error is not None or self._jpeg is None:
            self.stop()
            raise self._error or RuntimeError(f"{self.source}: no frame to serve")
        self._http = HttpServer(self.router, self._host, self._port)
        self._http.start()
        return self

    def stop(self) -> None:
        """Stop serving: open streams end, new connections are refused."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._producer is not None:
            self._producer.join(timeout=10)

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._http is None:
            raise RuntimeError("the server is not running: call start() or use it as a context manager")
        return self._http.url

    @property
    def url(self) -> str:
        """The MJPEG stream."""
        return f"{self.base_url}/video"

    @property
    def snapshot_url(self) -> str:
        """One JPEG of the current frame per request."""
        return f"{self.base_url}/shot.jpg"

    # -- fault knobs --------------------------------------------------------------------------------

    def drop_next(self, after_frames: int, connections: int = 1) -> None:
        """Close each of the next ``connections`` streams abruptly after ``after_frames`` frames."""
        with self._cond:
            self._drops += [after_frames] * connections

    def stall_next(self, after_frames: int, connections: int = 1) -> None:
        """Stop sending on each of the next ``connections`` streams after ``after_frames`` frames,
        keeping the connection open (the client's read timeout must notice)."""
        with self._cond:
            self._stalls += [after_frames] * connections

    # -- producing ----------------------------------------------------------------------------------

    def _encode(self, rgb: np.ndarray) -> bytes:
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
        if self.size:
            h, w = bgr.shape[:2]
            scale = min(self.size[0] / w, self.size[1] / h)
            if scale < 1:
                bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(self.quality)])
        if not ok:  # pragma: no cover
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()

    def _publish(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._seq += 1
            self.frames_produced += 1
            self._cond.notify_all()

    def _produce(self, camera: Any) -> None:
        try:
            if camera is not None:
                self._produce_from_camera(camera)
            else:
                self._produce_from_arrays(self.source)  # type: ignore[arg-type]
        except Exception as exc:
            self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _produce_from_arrays(self, frames: Sequence[Any]) -> None:
        from ..frame import Frame

        if not frames:
            raise ValueError("no frames to serve")
        jpegs = [self._encode(f.pixels if isinstance(f, Frame) else np.asarray(f)) for f in frames]
        interval = 1 / (self.fps or 10.0)
        start = time.monotonic()
        i = 0
        while not self._stop.is_set():
            if i >= len(jpegs) and not self.loop:
                return
            self._publish(jpegs[i % len(jpegs)])
            i += 1
            if self._stop.wait(max(0.0, start + i * interval - time.monotonic())):
                return

    def _produce_from_camera(self, camera: Any) -> None:
        with camera as cam:
            while not self._stop.is_set():
                try:
                    frame = cam.read(timeout=0.5)
                except TimeoutError:
                    continue
                if frame is None:
                    return
                self._publish(self._encode(frame.pixels))

    # -- serving ------------------------------------------------------------------------------------

    def _part(self, jpeg: bytes) -> bytes:
        head = f"--{self.boundary}\r\nContent-Type: image/jpeg\r\n"
        if self.content_length:
            head += f"Content-Length: {len(jpeg)}\r\n"
        return head.encode() + b"\r\n" + jpeg + b"\r\n"

    def _frames(self, stall_after: int | None) -> Iterator[bytes]:
        last = -1
        sent = 0
        while not self._stop.is_set():
            if stall_after is not None and sent >= stall_after:
                self._stop.wait()  # hold the connection open, silent, until the server stops
                return
            with self._cond:
                if self._seq == last and not self._ended:
                    self._cond.wait(timeout=0.5)
                if self._stop.is_set() or (self._ended and self._seq == last):
                    return
                if self._seq == last or self._jpeg is None:
                    continue
                jpeg, last = self._jpeg, self._seq
            yield self._part(jpeg)
            sent += 1

    def _video(self, _req: Request) -> Response | StreamResponse:
        with self._cond:
            self.connections += 1
            if self._ended or self._jpeg is None:
                return Response(503, "the stream has ended\n")
            drop = self._drops.pop(0) if self._drops else self.drop_after_frames
            stall = self._stalls.pop(0) if self._stalls else None
        return StreamResponse(self._frames(stall), content_type=f"multipart/x-mixed-replace; boundary={self.boundary}",
                              headers={"Pragma": "no-cache"}, drop_after_chunks=drop)

    def _shot(self, _req: Request) -> Response:
        with self._cond:
            jpeg = self._jpeg
        if jpeg is None:
            return Response(503, "no frame yet\n")
        return Response(200, jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    def _index(self, _req: Request) -> Response:
        return Response(200, f"vision-toolkit test camera: {self.url} (MJPEG), {self.snapshot_url} (one frame)\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vision.testing.mjpeg",
                                     description="Serve a video file, folder or image as an MJPEG network camera.")
    parser.add_argument("source", help="a video file, a folder of images or an image")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate (default: the file's own)")
    parser.add_argument("--no-loop", action="store_true", help="end the stream at the end of the file")
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality (default 80)")
    parser.add_argument("--drop-after", type=int, default=None, metavar="N",
                        help="close every connection after N frames (to test reconnects)")
    parser.add_argument("--no-content-length", action="store_true",
                        help="omit Content-Length from the parts, as some cameras do")
    args = parser.parse_args(argv)
    from ..errors import VisionError

    try:
        server = MjpegServer(args.source, fps=args.fps, loop=not args.no_loop, quality=args.quality, host=args.host,
                             port=args.port, drop_after_frames=args.drop_after,
                             content_length=not args.no_content_length)
    except OSError as exc:
        sys.stderr.write(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n")
        return 2
    except (VisionError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.start()
    except (VisionError, RuntimeError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(f"MJPEG_URL={server.url}\nSNAPSHOT_URL={server.snapshot_url}\n")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
