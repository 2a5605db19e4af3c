"""Camera sources: files at their own pace, live sources with latest-frame semantics, MJPEG over real
sockets (drops, stalls, reconnects), and a CameraError naming the source for every failure."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vision.camera import Camera, CameraFrame, _check_device, display_name, grab, iter_mjpeg, open_camera
from vision.errors import CameraError
from vision.frame import Frame
from vision.testing.http import HttpServer, Response, Router, StreamResponse
from vision.testing.mjpeg import MjpegServer

from .camera_support import SCENES, still_image, story_clip


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("clips") / "story.mp4"
    return path, story_clip(path)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says anything (a hung camera)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conns.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(srv.getsockname()[1])
    srv.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
    srv.close()
    thread.join(timeout=5)
    for c in conns:
        c.close()


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("camera:") and t.is_alive()]


# -- files, folders, images ---------------------------------------------------------------------------


def test_video_file_gives_every_frame_in_order_on_its_own_clock(story: tuple[Path, list[str]]) -> None:
    path, labels = story
    with Camera(path) as cam:
        assert (cam.kind, cam.live, cam.stills) == ("video", False, False)
        assert cam.fps == pytest.approx(15.0)
        frames = []
        for frame in cam:
            if len(frames) < 3:
                time.sleep(0.05)  # a slow consumer: a file waits for it, nothing is dropped
            frames.append(frame)
        stats = cam.stats
    assert [f.index for f in frames] == list(range(len(labels)))
    assert stats.frames_dropped == 0 and stats.frames_delivered == len(labels)
    first = frames[0]
    assert isinstance(first, CameraFrame) and isinstance(first, Frame)
    assert first.size == (640, 360) and first.source == str(path)
    gaps = np.diff([f.timestamp for f in frames])
    assert np.allclose(gaps, 1 / 15, atol=1e-6)  # the file's clock, not the machine's speed
    assert not reader_threads()


def test_frames_are_rgb(tmp_path: Path) -> None:
    import cv2

    red = np.zeros((120, 160, 3), np.uint8)
    red[..., 2] = 255  # BGR red, as cv2 writes it
    cv2.imwrite(str(tmp_path / "red.png"), red)
    frame = grab(tmp_path / "red.png")
    assert tuple(frame.pixels[0, 0]) == (255, 0, 0)


def test_realtime_playback_drops_stale_frames_and_keeps_the_newest(story: tuple[Path, list[str]]) -> None:
    path, _ = story
    with Camera(path, realtime=True) as cam:
        assert cam.live
        first = cam.read(timeout=10)
        time.sleep(0.5)  # about 7 frames at 15 fps go by: they are replaced, not queued
        second = cam.read(timeout=10)
        assert first is not None and second is not None
        assert second.index - first.index >= 3
        assert cam.stats.frames_dropped >= 2
        third = cam.read(timeout=10)
        assert third is not None and third.index > second.index
    assert not reader_threads()


def test_fps_cap_and_size_cap(story: tuple[Path, list[str]]) -> None:
    path, labels = story
    with Camera(path, fps=5, size=(320, 320)) as cam:
        frames = list(cam)
        skipped = cam.stats.frames_skipped
    assert abs(len(frames) - len(labels) / 3) <= 2
    assert skipped >= len(labels) // 2
    assert frames[0].size == (320, 180)
    assert np.allclose(np.diff([f.timestamp for f in frames]), 0.2, atol=0.07)


def test_loop_restarts_a_file_with_a_running_clock(story: tuple[Path, list[str]]) -> None:
    path, labels = story
    with Camera(path, loop=True) as cam:
        frames = [cam.read(timeout=10) for _ in range(len(labels) + 5)]
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(len(labels) + 5))  # type: ignore[union-attr]
    assert np.all(np.diff([f.timestamp for f in frames]) > 0)  # type: ignore[union-attr]


def test_folder_in_natural_order_skips_unreadable_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    for name, width in (("img10.jpg", 300), ("img2.jpg", 200), ("img1.png", 100)):
        Frame.from_array(np.full((80, width, 3), 128, np.uint8)).save(folder / name)
    (folder / "img3.jpg").write_bytes(b"not really a jpeg")
    (folder / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING, logger="vision.camera"), Camera(folder) as cam:
        assert (cam.kind, cam.stills) == ("folder", True)
        frames = list(cam)
    assert [f.width for f in frames] == [100, 200, 300]
    assert [f.index for f in frames] == [0, 1, 2]
    assert "img3.jpg" in caplog.text


def test_still_image_is_a_one_frame_source(tmp_path: Path) -> None:
    path = still_image(tmp_path / "book.jpg")
    with open_camera(path) as cam:
        assert cam.kind == "image"
        assert cam.read(timeout=5) is not None
        assert cam.read(timeout=5) is None
        assert cam.ended


# -- failures name the source ----------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="device checks are Linux-only (/dev/video*)")
def test_missing_camera_gives_camera_error() -> None:
    index = next(i for i in range(9, 64) if not Path(f"/dev/video{i}").exists())
    with pytest.raises(CameraError) as err:
        Camera(index).open()
    assert err.value.source == f"camera {index}"
    assert "no such camera" in str(err.value) and f"/dev/video{index}" in str(err.value)
    with pytest.raises(CameraError, match="no such camera"):
        open_camera("/dev/video99")
    assert not reader_threads()


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() == 0,
                    reason="root opens any device file, so permission errors cannot be produced")
def test_device_without_permission(tmp_path: Path) -> None:
    dev = tmp_path / "video0"
    dev.write_bytes(b"")
    dev.chmod(0)
    with pytest.raises(CameraError, match=r"permission denied.*video' group"):
        _check_device(str(dev), "camera 0")


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty file"),
    (b"this is a text file, not a video\n" * 10, "not a video"),
])
def test_files_that_are_not_videos(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(CameraError, match=message) as err:
        open_camera(path)
    assert err.value.source == str(path)


def test_damaged_video(tmp_path: Path, story: tuple[Path, list[str]]) -> None:
    path = tmp_path / "damaged.mp4"
    path.write_bytes(story[0].read_bytes()[:3000])
    with pytest.raises(CameraError) as err:
        open_camera(path)
    assert err.value.source == str(path)
    assert "not a video" in str(err.value) or "no decodable frames" in str(err.value)


def test_missing_paths_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no such file or folder"):
        open_camera(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CameraError, match="no images"):
        open_camera(tmp_path / "empty")
    with pytest.raises(CameraError, match="empty source"):
        Camera("  ")


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/cam", "unsupported URL scheme 'ftp'"),
    ("http:///video", "no host name"),
    ("rtsp://", "no host name"),
])
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(CameraError, match=message):
        open_camera(url)


def test_unreachable_camera_and_credentials_stay_secret(closed_port: int) -> None:
    url = f"http://admin:hunter2@127.0.0.1:{closed_port}/video?pwd=hunter2&res=hd"
    with pytest.raises(CameraError) as err:
        open_camera(url, timeout=2)
    text = str(err.value)
    assert "connection refused" in text
    assert "hunter2" not in text and "hunter2" not in err.value.source
    assert "admin:***@" in text and "res=hd" in text
    assert display_name(url) == err.value.source
    assert Camera(url)._backend.scrub(f"failed: GET {url}") == f"failed: GET {url.replace('hunter2', '***')}"


def test_rtsp_that_never_answers_fails_within_its_timeout(silent_server: int) -> None:
    start = time.monotonic()
    with pytest.raises(CameraError, match="cannot open the stream within 1 s"):
        open_camera(f"rtsp://127.0.0.1:{silent_server}/live", timeout=1)
    assert time.monotonic() - start < 15  # FFmpeg's open timeout holds: no hang


def test_http_camera_that_never_answers(silent_server: int) -> None:
    with pytest.raises(CameraError, match="no answer within 1 s"):
        open_camera(f"http://127.0.0.1:{silent_server}/video", timeout=1)


def _text_parts(_req: object) -> StreamResponse:
    parts = [b"--b\r\nContent-Type: text/plain\r\n\r\nhello " + bytes([48 + i]) + b"\r\n" for i in range(8)]
    return StreamResponse(iter(parts), content_type="multipart/x-mixed-replace; boundary=b")


@pytest.fixture
def web() -> Iterator[HttpServer]:
    router = Router()
    router.add("GET", "/text-stream", _text_parts)
    router.add("GET", "/page", lambda _r: Response(200, "<html><body>login</body></html>", content_type="text/html"))
    router.add("GET", "/locked", lambda _r: Response(401, "no", headers={"WWW-Authenticate": 'Basic realm="cam"'}))
    router.add("GET", "/gone", lambda _r: Response(404, "not here"))
    server = HttpServer(router)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(("path", "message"), [
    ("/page", "serves text/html, not an MJPEG stream"),
    ("/locked", "HTTP 401: the camera wants a user name and password"),
    ("/gone", "HTTP 404"),
    ("/text-stream", "parts are not images"),
])
def test_http_answers_that_are_not_cameras(web: HttpServer, path: str, message: str) -> None:
    with pytest.raises(CameraError, match=message) as err:
        open_camera(web.url + path, timeout=5)
    assert err.value.source == web.url + path


# -- MJPEG over a real socket ----------------------------------------------------------------------------


def scene_frames(n: int = 6, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    import cv2

    out = []
    for i in range(n):
        img = SCENES[i % len(SCENES)]()
        out.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    return out


def test_mjpeg_stream(story: tuple[Path, list[str]]) -> None:
    with MjpegServer(story[0]) as server, open_camera(server.url) as cam:
        assert (cam.kind, cam.live) == ("mjpeg", True)
        frames = [cam.read(timeout=10) for _ in range(10)]
        assert all(f is not None and f.size == (640, 360) for f in frames)
        assert [f.index for f in frames] == sorted({f.index for f in frames})  # type: ignore[union-attr]
        assert frames[0].source == server.url  # type: ignore[union-attr]
    assert not reader_threads()


def test_mjpeg_reconnects_after_the_server_drops_mid_stream() -> None:
    with MjpegServer(scene_frames(), fps=30) as server:
        server.drop_next(5, connections=2)
        with open_camera(server.url, backoff=(0.05, 0.2)) as cam:
            frames = [cam.read(timeout=10) for _ in range(25)]
            assert all(f is not None for f in frames)
            assert cam.stats.reconnects >= 2
            assert "peer closed" in (cam.stats.last_error or "") or cam.stats.last_error
        assert server.connections >= 3


def test_mjpeg_stall_is_noticed_by_the_read_timeout_and_reconnected() -> None:
    with MjpegServer(scene_frames(), fps=30) as server:
        server.stall_next(3)
        with open_camera(server.url, timeout=0.5, backoff=(0.05, 0.2)) as cam:
            frames = [cam.read(timeout=10) for _ in range(10)]
            assert all(f is not None for f in frames)
            assert cam.stats.reconnects >= 1


def test_mjpeg_gives_up_when_the_camera_stays_away() -> None:
    server = MjpegServer(scene_frames(), fps=30).start()
    cam = open_camera(server.url, timeout=1, give_up_after=0.5, backoff=(0.05, 0.1))
    try:
        assert cam.read(timeout=10) is not None
        server.stop()
        with pytest.raises(CameraError, match="could not reconnect"):
            for _ in range(1000):
                cam.read(timeout=10)
    finally:
        cam.close()
        server.stop()


def test_mjpeg_without_content_length_and_snapshot_urls() -> None:
    with MjpegServer(scene_frames(), fps=30, content_length=False, boundary="--weird") as server:
        with open_camera(server.url) as cam:
            assert all(cam.read(timeout=10) is not None for _ in range(5))
            assert cam.stats.frames_corrupt == 0
        with open_camera(server.snapshot_url, fps=20) as cam:
            assert cam.kind == "snapshot"
            frames = [cam.read(timeout=10) for _ in range(3)]
            assert all(f is not None and f.size == (320, 240) for f in frames)


def test_mjpeg_server_refuses_unreadable_sources(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no such file"):
        MjpegServer(tmp_path / "nope.mp4").start()


def _jpeg(seed: int) -> bytes:
    return Frame.from_array(np.full((16, 16, 3), seed * 40, np.uint8)).to_jpeg()


@pytest.mark.parametrize("with_length", [True, False])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_iter_mjpeg_parses_parts_split_anywhere(with_length: bool, chunk: int) -> None:
    parts = [_jpeg(i) for i in range(4)]
    body = b""
    for p in parts:
        head = b"--frame\r\nContent-Type: image/jpeg\r\n"
        if with_length:
            head += f"Content-Length: {len(p)}\r\n".encode()
        body += head + b"\r\n" + p + b"\r\n"
    body += b"--frame--\r\n"
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    assert list(iter_mjpeg(iter(chunks), b"frame")) == parts


def test_iter_mjpeg_without_a_boundary_uses_jpeg_markers() -> None:
    parts = [_jpeg(i) for i in range(3)]
    body = b"".join(b"junk\r\n" + p for p in parts)
    assert list(iter_mjpeg(iter([body[:50], body[50:]]), None)) == parts


def test_iter_mjpeg_refuses_huge_parts() -> None:
    body = b"--f\r\nContent-Length: 999999999\r\n\r\nxxxx"
    with pytest.raises(CameraError, match="too large"):
        list(iter_mjpeg(iter([body]), b"f", max_part=1000))
