"""Image and video generation as the fake server speaks it.

* OpenAI ``POST /v1/images/generations`` (GPT-image style: ``b64_json`` images, usage, the
  ``moderation_blocked`` refusal) and the videos API as openai 3.x calls it (``POST /v1/videos``
  multipart, ``GET /v1/videos/{id}``, ``GET /v1/videos/{id}/content``, ``DELETE``; queued ->
  in_progress -> completed; ``gone`` in the model name answers 410 as a shut-down API would).
* Replicate image and video models: predictions of models matching :data:`GENERATOR_MODELS` (or
  with ``image-out``/``video-out`` in their name) succeed with real files (PNG/WebP/JPEG images,
  MP4 videos) as ``http:`` URLs served by the fake under ``/delivery/...`` or, with
  ``server.generation_delivery = "data"``, as ``data:`` URIs. ``refuse`` fails them the way a
  safety checker does (``NSFW content detected``).
* Replicate's files API (``POST /v1/files``), for start images too large for a data URL.

Knobs on the server: ``generation_delivery`` ("url" or "data"), ``drop_downloads`` (the next N file
downloads close the connection half way), ``video_seconds`` (how long an OpenAI video job runs).
"""

from __future__ import annotations

import base64
import email.parser
import fnmatch
import functools
import io
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .http import Request, Response

if TYPE_CHECKING:
    from .replicate_fake import FakePrediction
    from .server import FakeServer

# model glob -> (kind, default output format, output is a list)
GENERATOR_MODELS: dict[str, tuple[str, str, bool]] = {
    "black-forest-labs/flux-schnell": ("image", "webp", True),
    "black-forest-labs/flux-dev": ("image", "webp", True),
    "black-forest-labs/*": ("image", "webp", False),
    "ideogram-ai/*": ("image", "png", False),
    "stability-ai/*": ("image", "png", True),
    "*sdxl*": ("image", "png", True),
    "kwaivgi/*": ("video", "mp4", False),
    "minimax/video-*": ("video", "mp4", False),
    "minimax/hailuo-*": ("video", "mp4", False),
    "google/veo-*": ("video", "mp4", False),
    "bytedance/seedance-*": ("video", "mp4", False),
    "wan-video/*": ("video", "mp4", False),
}
NSFW_ERROR = "NSFW content detected. Try running it again, or try a different prompt."
MIME = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg", "jpeg": "image/jpeg", "mp4": "video/mp4"}


def fake_image(width: int, height: int, fmt: str, seed: int = 0) -> bytes:
    """A small deterministic gradient image in ``fmt`` (png, webp, jpg)."""
    import numpy as np
    from PIL import Image

    w, h = max(8, width), max(8, height)
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
    arr[..., 2] = (seed * 37) % 256
    bio = io.BytesIO()
    Image.fromarray(arr).save(bio, format={"jpg": "JPEG", "jpeg": "JPEG"}.get(fmt, fmt.upper()))
    return bio.getvalue()


@functools.lru_cache(maxsize=8)
def fake_video(width: int = 64, height: int = 36, frames: int = 8) -> bytes:
    """A tiny real MP4 (OpenCV's mp4v), or a bare ``ftyp`` box when OpenCV cannot write one."""
    try:
        import cv2
        import numpy as np

        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "fake.mp4")
            writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 8, (width, height))
            try:
                for i in range(frames):
                    writer.write(np.full((height, width, 3), (i * 29) % 256, np.uint8))
            finally:
                writer.release()
            data = Path(path).read_bytes()
        if data:
            return data
    except Exception:
        pass
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64


def _small_size(inputs: dict[str, Any]) -> tuple[int, int]:
    """A small output size with the requested shape (the bytes matter to tests, not the pixels)."""
    if isinstance(inputs.get("width"), int) and isinstance(inputs.get("height"), int):
        return inputs["width"] // 16, inputs["height"] // 16
    for key in ("size",):
        m = re.fullmatch(r"(\d+)x(\d+)", str(inputs.get(key, "")))
        if m:
            return int(m.group(1)) // 16, int(m.group(2)) // 16
    m = re.fullmatch(r"(\d+):(\d+)", str(inputs.get("aspect_ratio", "")))
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        return (64, max(8, 64 * b // a)) if a >= b else (max(8, 64 * a // b), 64)
    return 64, 64


def _multipart(req: Request) -> dict[str, Any]:
    """Form fields (str) and files ((filename, bytes, content type)) of a multipart body."""
    ctype = req.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        return {}
    msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + req.body)
    out: dict[str, Any] = {}
    for part in msg.get_payload() if msg.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            out[name] = (filename, payload, part.get_content_type())
        else:
            out[name] = payload.decode("utf-8", "replace")
    return out


@dataclass
class FakeVideo:
    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    duration: float
    fail: bool = False
    created: float = field(default_factory=time.monotonic)
    created_wall: int = field(default_factory=lambda: int(time.time()))
    deleted: bool = False
    reference: tuple[str, int] | None = None

    @property
    def status(self) -> str:
        t = time.monotonic() - self.created
        if t < 0.25 * self.duration:
            return "queued"
        if t < self.duration:
            return "in_progress"
        return "failed" if self.fail else "completed"

    def to_json(self) -> dict[str, Any]:
        status = self.status
        t = time.monotonic() - self.created
        progress = 100 if status in {"completed", "failed"} else int(100 * max(0.0, t / self.duration)) if \
            status == "in_progress" else 0
        return {
            "id": self.id, "object": "video", "model": self.model, "status": status, "progress": min(progress, 99)
            if status == "in_progress" else progress, "created_at": self.created_wall,
            "completed_at": self.created_wall + int(self.duration) if status in {"completed", "failed"} else None,
            "expires_at": self.created_wall + 3600 if status == "completed" else None, "prompt": self.prompt,
            "seconds": self.seconds, "size": self.size, "remixed_from_video_id": None,
            "error": {"code": "moderation_blocked", "message": "The video was blocked by our moderation system."}
            if status == "failed" else None,
        }


def register(server: FakeServer) -> None:
    from .openai_fake import error as openai_error
    from .openai_fake import status_error
    from .replicate_fake import problem

    files: dict[str, tuple[bytes, str]] = {}
    videos: dict[str, FakeVideo] = {}
    lock = threading.Lock()
    server.generation_delivery = "url"  # type: ignore[attr-defined]
    server.drop_downloads = 0  # type: ignore[attr-defined]
    server.video_seconds = 0.1  # type: ignore[attr-defined]
    server.generator_models = dict(GENERATOR_MODELS)  # type: ignore[attr-defined]
    server.generated_files = files  # type: ignore[attr-defined]
    server.openai_videos = videos  # type: ignore[attr-defined]
    previous_reset = server.reset_state

    def reset_state() -> None:
        previous_reset()
        with lock:
            files.clear()
            videos.clear()
        server.drop_downloads = 0  # type: ignore[attr-defined]
        server.generation_delivery = "url"  # type: ignore[attr-defined]

    server.reset_state = reset_state  # type: ignore[method-assign]

    def store(name: str, data: bytes, mime: str) -> str:
        """Serve ``data`` (``url`` delivery) or wrap it in a data: URI."""
        if server.generation_delivery == "data":  # type: ignore[attr-defined]
            return f"data:{mime};base64,{base64.b64encode(data).decode()}"
        with lock:
            files[name] = (data, mime)
        return f"{server.url}/delivery/{name}"

    def generator_kind(model: str) -> tuple[str, str, bool] | None:
        if re.search(r"(^|[-_/.])image-out($|[-_/.])", model):
            return "image", "png", True
        if re.search(r"(^|[-_/.])video-out($|[-_/.])", model):
            return "video", "mp4", False
        table: dict[str, tuple[str, str, bool]] = server.generator_models  # type: ignore[attr-defined]
        return next((v for glob, v in table.items() if fnmatch.fnmatchcase(model, glob)), None)

    # -- Replicate: file outputs for generator models ----------------------------------------------

    def prediction_hook(pred: FakePrediction) -> None:
        spec = generator_kind(pred.model)
        if spec is None or pred.reply.text is not None:
            return
        if pred.reply.fault == "refuse":
            pred.reply = replace(pred.reply, fault="fail", error=NSFW_ERROR, output=None)
            return
        if pred.reply.output is not None or pred.reply.fault in {"fail", "empty"}:
            return
        kind, default_fmt, as_list = spec
        count_key = next((k for k in ("num_outputs", "num_images", "number_of_images") if k in pred.input), None)
        count = max(1, min(8, int(pred.input.get(count_key, 1)))) if count_key else 1
        outputs = []
        for i in range(count):
            if kind == "video":
                data, ext = fake_video(), "mp4"
            else:
                ext = str(pred.input.get("output_format") or default_fmt).lower()
                ext = ext if ext in MIME else default_fmt
                w, h = _small_size(pred.input)
                data = fake_image(w, h, ext, seed=int(pred.input.get("seed") or 0) + i)
            outputs.append(store(f"{pred.id}/out-{i}.{ext}", data, MIME[ext]))
        pred.reply = replace(pred.reply, output=outputs if (as_list or count_key) else outputs[0])

    hooks = getattr(server, "prediction_hooks", [])
    hooks.append(prediction_hook)
    server.prediction_hooks = hooks  # type: ignore[attr-defined]

    def delivery(req: Request) -> Response:
        server.record("files", req)
        name = f"{req.params['id']}/{req.params['name']}"
        with lock:
            item = files.get(name)
        if item is None:
            return Response(404, "not found", content_type="text/plain")
        data, mime = item
        resp = Response(200, data, content_type=mime)
        if server.drop_downloads > 0:  # type: ignore[attr-defined]
            server.drop_downloads -= 1  # type: ignore[attr-defined]
            resp.drop_after = len(data) // 2
        return resp

    # -- Replicate files API ----------------------------------------------------------------------------

    def upload(req: Request) -> Response:
        server.record("replicate", req)
        if not req.bearer or not server.check_key(req):
            return problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        form = _multipart(req)
        content = form.get("content")
        if not isinstance(content, tuple):
            return problem(422, "Invalid file", "a multipart 'content' file is required")
        filename, data, mime = content
        file_id = server.next_id("file_")
        with lock:
            files[f"{file_id}/{filename}"] = (data, mime)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return Response(201, {
            "id": file_id, "name": filename, "content_type": mime, "size": len(data), "etag": file_id,
            "checksums": {}, "metadata": {}, "created_at": now, "expires_at": None,
            "urls": {"get": f"{server.url}/delivery/{file_id}/{filename}"},
        })

    # -- OpenAI images ----------------------------------------------------------------------------------

    def images(req: Request) -> Response:
        request_id = server.next_id("req_")
        if not server.check_key(req):
            server.record("openai", req)
            return openai_error(401, "Incorrect API key provided.", code="invalid_api_key")
        try:
            body = req.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body.get("prompt"):
            server.record("openai", req)
            return openai_error(400, "you must provide a model and a prompt", param="prompt")
        model = body["model"]
        server.record("openai", req, model=model, texts=[str(body["prompt"])])
        reply = server.reply_for(model)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status:
            return status_error(reply, request_id)
        if reply.fault == "missing":
            return openai_error(404, f"The model '{model}' does not exist.", code="model_not_found")
        if reply.fault == "refuse":
            return openai_error(400, "Your request was rejected by the safety system. If you believe this is an "
                                f"error, contact us and include the request ID {request_id}.",
                                type_="image_generation_user_error", code="moderation_blocked",
                                headers={"x-request-id": request_id})
        n = body.get("n") or 1
        if not isinstance(n, int) or not 1 <= n <= 10:
            return openai_error(400, "Invalid 'n': must be between 1 and 10.", param="n")
        fmt = body.get("output_format") or "png"
        size = body.get("size") or "1024x1024"
        if fmt not in {"png", "jpeg", "webp"}:
            return openai_error(400, f"Invalid 'output_format': {fmt!r}.", param="output_format")
        w, h = _small_size({"size": size if size != "auto" else "1024x1024"})
        data = [{"b64_json": base64.b64encode(fake_image(w, h, fmt, seed=i)).decode()} for i in range(n)]
        prompt_tokens = len(str(body["prompt"])) // 4 + 1
        out_tokens = 1056 * n
        return Response(200, {
            "created": int(time.time()), "background": "opaque", "data": data, "output_format": fmt,
            "quality": "medium", "size": size,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": out_tokens,
                      "total_tokens": prompt_tokens + out_tokens,
                      "input_tokens_details": {"image_tokens": 0, "text_tokens": prompt_tokens}},
        }, headers={"x-request-id": request_id})

    # -- OpenAI videos ----------------------------------------------------------------------------------

    def video_create(req: Request) -> Response:
        if not server.check_key(req):
            server.record("openai", req)
            return openai_error(401, "Incorrect API key provided.", code="invalid_api_key")
        form = _multipart(req)
        model = str(form.get("model") or "sora-2")
        prompt = form.get("prompt")
        server.record("openai", req, model=model, texts=[str(prompt or "")])
        reply = server.reply_for(model)
        if re.search(r"(^|[-_/.])gone($|[-_/.])", model):
            return openai_error(410, "The Sora API has been shut down.", code="gone")
        if reply.status:
            return status_error(reply, server.next_id("req_"))
        if not isinstance(prompt, str) or not prompt:
            return openai_error(400, "Missing required parameter: 'prompt'.", param="prompt")
        seconds = str(form.get("seconds") or "4")
        if seconds not in {"4", "8", "12"}:
            return openai_error(400, f"Invalid 'seconds': {seconds!r}; expected 4, 8 or 12.", param="seconds")
        ref = form.get("input_reference")
        video = FakeVideo(server.next_id("video_"), model, prompt, seconds, str(form.get("size") or "720x1280"),
                          reply.delay or server.video_seconds,  # type: ignore[attr-defined]
                          fail=reply.fault in {"fail", "refuse"},
                          reference=(ref[0], len(ref[1])) if isinstance(ref, tuple) else None)
        with lock:
            videos[video.id] = video
        return Response(200, video.to_json())

    def video_lookup(req: Request) -> tuple[FakeVideo | None, Response | None]:
        server.record("openai", req)
        if not server.check_key(req):
            return None, openai_error(401, "Incorrect API key provided.", code="invalid_api_key")
        video = videos.get(req.params["id"])
        if video is None or video.deleted:
            return None, openai_error(404, f"Video '{req.params['id']}' not found.", code="not_found")
        return video, None

    def video_get(req: Request) -> Response:
        video, err = video_lookup(req)
        return err or Response(200, video.to_json())  # type: ignore[union-attr]

    def video_delete(req: Request) -> Response:
        video, err = video_lookup(req)
        if err:
            return err
        assert video is not None
        video.deleted = True
        return Response(200, {"id": video.id, "object": "video.deleted", "deleted": True})

    def video_content(req: Request) -> Response:
        video, err = video_lookup(req)
        if err:
            return err
        assert video is not None
        if video.status != "completed":
            return openai_error(400, f"Video '{video.id}' is not ready (status {video.status}).")
        data = fake_video()
        resp = Response(200, data, content_type="video/mp4")
        if server.drop_downloads > 0:  # type: ignore[attr-defined]
            server.drop_downloads -= 1  # type: ignore[attr-defined]
            resp.drop_after = len(data) // 2
        return resp

    r = server.router
    r.add("GET", "/delivery/{id}/{name}", delivery)
    r.add("POST", "/v1/files", upload)
    r.add("POST", "/v1/images/generations", images)
    r.add("POST", "/v1/videos", video_create)
    r.add("GET", "/v1/videos/{id}", video_get)
    r.add("DELETE", "/v1/videos/{id}", video_delete)
    r.add("GET", "/v1/videos/{id}/content", video_content)
