"""The Replicate HTTP API as the fake server speaks it: predictions by model or version with
``Prefer: wait``, polling through ``starting``/``processing`` with tqdm-style logs, cancel, SSE
output streams, models and versions, and errors as RFC 7807 problem details."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .http import Request, Response, StreamResponse, sse
from .server import ReceivedImage, Script, describe_image

if TYPE_CHECKING:
    from .server import FakeServer

FAKE_VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"title": title, "detail": detail, "status": status}, headers=headers or {},
                    content_type="application/problem+json")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class FakePrediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    reply: Script
    duration: float
    created_wall: float = field(default_factory=time.time)
    created: float = field(default_factory=time.monotonic)
    canceled_at: float | None = None
    images: list[ReceivedImage] = field(default_factory=list)
    text: str = ""

    def elapsed(self) -> float:
        end = self.canceled_at if self.canceled_at is not None else time.monotonic()
        return end - self.created

    @property
    def status(self) -> str:
        if self.canceled_at is not None:
            return "canceled"
        t = self.elapsed()
        if t < 0.25 * self.duration:
            return "starting"
        if t < self.duration:
            return "processing"
        return "failed" if self.reply.fault == "fail" else "succeeded"

    def tokens(self) -> list[str]:
        return re.findall(r"\S+\s*|\s+", self.text)

    def progress(self) -> float:
        if self.duration <= 0:
            return 1.0
        return max(0.0, min(1.0, (self.elapsed() - 0.25 * self.duration) / (0.75 * self.duration)))

    def output(self) -> Any:
        status = self.status
        if status in {"starting", "failed"}:
            return None
        if self.reply.output is not None:
            return self.reply.output if status == "succeeded" else None
        tokens = self.tokens()
        if status == "succeeded":
            return tokens
        return tokens[: int(len(tokens) * self.progress())]

    def logs(self) -> str:
        if self.reply.logs is not None:
            return self.reply.logs
        if self.status == "starting":
            return ""
        total = 5
        done = total if self.status == "succeeded" else int(total * self.progress())
        lines = ["Loading model weights..."]
        for step in range(1, done + 1):
            pct = step * 100 // total
            bar = "█" * (pct // 10) + " " * (10 - pct // 10)
            lines.append(f"{pct:3d}%|{bar}| {step}/{total} [00:0{step}<00:0{total - step}, 1.00it/s]")
        return "\n".join(lines)

    def to_json(self, base: str) -> dict[str, Any]:
        status = self.status
        started = self.created_wall + 0.25 * self.duration if status != "starting" else None
        completed = None
        if status in {"succeeded", "failed"}:
            completed = self.created_wall + self.duration
        elif status == "canceled":
            completed = self.created_wall + self.elapsed()
        metrics: dict[str, Any] = {}
        if status == "succeeded":
            metrics = {"predict_time": round(0.75 * self.duration, 4),
                       "input_token_count": sum(len(str(v)) // 4 for v in self.input.values() if isinstance(v, str)
                                                and not v.startswith("data:")),
                       "output_token_count": len(self.tokens())}
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "logs": self.logs(),
            "output": self.output(),
            "data_removed": False,
            "error": (self.reply.error or "CUDA out of memory") if status == "failed" else None,
            "status": status,
            "source": "api",
            "created_at": _iso(self.created_wall),
            "started_at": _iso(started),
            "completed_at": _iso(completed),
            "urls": {
                "get": f"{base}/v1/predictions/{self.id}",
                "cancel": f"{base}/v1/predictions/{self.id}/cancel",
                "stream": f"{base}/v1/predictions/{self.id}/stream",
                "web": f"{base}/p/{self.id}",
            },
            "metrics": metrics,
        }


def default_text(model: str, input: dict[str, Any], images: list[ReceivedImage]) -> str:
    prompt = next((str(v) for k, v in input.items() if "prompt" in k and "system" not in k and isinstance(v, str)),
                  next((str(v) for k, v in input.items() if k in {"question", "query", "text"}), ""))
    lines = [ln.strip() for ln in prompt.strip().splitlines() if ln.strip()]
    users = [ln for ln in lines if ln.startswith("User:")]
    question = users[-1].removeprefix("User:").strip() if users else (lines[-1] if lines else "")
    seen = ", ".join(f"{i.width}x{i.height} {i.format or 'unreadable'}" for i in images)
    looked = f"I received {len(images)} image(s) ({seen})." if images else "I received no image."
    return f"[{model}] {looked} You asked: {question!r}"


def register(server: FakeServer) -> None:
    predictions: dict[str, FakePrediction] = {}
    lock = threading.Lock()
    previous_reset = server.reset_state

    def reset_state() -> None:
        previous_reset()
        with lock:
            predictions.clear()

    server.reset_state = reset_state  # type: ignore[method-assign]
    server.replicate_predictions = predictions  # type: ignore[attr-defined]

    def unauthorized(req: Request) -> Response | None:
        if not req.bearer:
            return problem(401, "Unauthenticated", "You did not pass an authentication token")
        if not server.check_key(req):
            return problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        return None

    def wait_seconds(req: Request) -> float | None:
        prefer = req.headers.get("prefer", "")
        m = re.match(r"\s*wait(?:=(\d+))?", prefer)
        if not m:
            return None
        return float(m.group(1)) if m.group(1) else 60.0

    def create(req: Request, model: str, version: str) -> Response:
        if (resp := unauthorized(req)) is not None:
            server.record("replicate", req, model=model)
            return resp
        try:
            body = req.json() or {}
        except ValueError:
            server.record("replicate", req, model=model)
            return problem(400, "Invalid JSON", "The request body is not valid JSON")
        inputs = body.get("input")
        if not isinstance(inputs, dict):
            server.record("replicate", req, model=model)
            return problem(422, "Input validation failed", "input is required and must be an object")
        images = [describe_image(v) for v in inputs.values() if isinstance(v, str) and v.startswith("data:image/")]
        texts = [str(v) for k, v in inputs.items() if isinstance(v, str) and not v.startswith("data:")]
        server.record("replicate", req, model=model, images=images, texts=texts)
        reply = server.reply_for(model)
        if reply.status:
            headers = {}
            if reply.status == 429:
                retry = reply.retry_after if reply.retry_after is not None else (reply.retry_after_ms or 1000) / 1000
                headers["Retry-After"] = f"{retry:g}"
                return problem(429, "Too Many Requests", reply.error or "Request was throttled.", headers)
            return problem(reply.status, "Error", reply.error or f"request failed with status {reply.status}")
        if reply.fault == "missing":
            return problem(404, "Not found", f"Model {model} not found or you do not have access to it")
        duration = reply.delay if reply.delay else server.prediction_seconds
        pred = FakePrediction(server.next_id("p"), model, version, inputs, reply, duration, images=images)
        pred.text = reply.text if reply.text is not None else default_text(model, inputs, images)
        if reply.fault == "empty":
            pred.text = ""
        for hook in getattr(server, "prediction_hooks", ()):  # e.g. file outputs of generators
            hook(pred)
        with lock:
            predictions[pred.id] = pred
        wait = wait_seconds(req)
        if wait is not None:
            deadline = time.monotonic() + wait
            while pred.status not in {"succeeded", "failed", "canceled"} and time.monotonic() < deadline:
                time.sleep(0.01)
        resp = Response(201, pred.to_json(server.url))
        if reply.fault == "malformed":
            resp.body = json.dumps(resp.body)[:30].encode()
        if reply.fault == "drop":
            resp.drop_after = 20
        return resp

    def create_for_model(req: Request) -> Response:
        owner, name = req.params["owner"], req.params["name"]
        return create(req, f"{owner}/{name}", FAKE_VERSION)

    def create_for_version(req: Request) -> Response:
        try:
            body = req.json() or {}
        except ValueError:
            body = {}
        version = str(body.get("version", ""))
        model = version.split(":")[0] if "/" in version else "fake/versioned"
        return create(req, model, version.split(":")[-1] or FAKE_VERSION)

    def lookup(req: Request) -> tuple[FakePrediction | None, Response | None]:
        if (resp := unauthorized(req)) is not None:
            return None, resp
        server.record("replicate", req)
        pred = predictions.get(req.params["id"])
        return pred, None if pred else problem(404, "Not found", "Prediction not found")

    def get(req: Request) -> Response:
        pred, error = lookup(req)
        return error or Response(200, pred.to_json(server.url))  # type: ignore[union-attr]

    def cancel(req: Request) -> Response:
        pred, error = lookup(req)
        if error:
            return error
        assert pred is not None
        if pred.status not in {"succeeded", "failed", "canceled"}:
            pred.canceled_at = time.monotonic()
        return Response(200, pred.to_json(server.url))

    def stream(req: Request) -> Response | StreamResponse:
        server.record("replicate", req)
        pred = predictions.get(req.params["id"])
        if pred is None:
            return problem(404, "Not found", "Prediction not found")

        def events() -> Iterator[bytes]:
            sent = 0
            ids = iter(range(1, 1_000_000))
            yield b": stream of " + pred.id.encode() + b"\n\n"
            while True:
                status = pred.status
                tokens = pred.tokens()
                ready = len(tokens) if status == "succeeded" else int(len(tokens) * pred.progress())
                if status in {"processing", "succeeded"} and pred.reply.output is None:
                    while sent < ready:
                        yield sse(tokens[sent], "output", str(next(ids)))
                        sent += 1
                if status == "succeeded":
                    if pred.reply.output is not None:
                        out = pred.reply.output
                        for item in out if isinstance(out, list) else [out]:
                            yield sse(str(item), "output", str(next(ids)))
                    yield sse("{}", "done", str(next(ids)))
                    return
                if status == "failed":
                    yield sse(pred.reply.error or "CUDA out of memory", "error", str(next(ids)))
                    return
                if status == "canceled":
                    yield sse(json.dumps({"reason": "canceled"}), "done", str(next(ids)))
                    return
                time.sleep(0.01)

        return StreamResponse(events(), drop_after_chunks=3 if pred.reply.fault == "drop" else None)

    def model_info(req: Request) -> Response:
        if (resp := unauthorized(req)) is not None:
            return resp
        owner, name = req.params["owner"], req.params["name"]
        return Response(200, {
            "url": f"{server.url}/{owner}/{name}", "owner": owner, "name": name, "description": "fake model",
            "visibility": "public", "run_count": 0, "latest_version": _version(FAKE_VERSION),
        })

    def version_info(req: Request) -> Response:
        if (resp := unauthorized(req)) is not None:
            return resp
        return Response(200, _version(req.params["version"]))

    r = server.router
    r.add("POST", "/v1/models/{owner}/{name}/predictions", create_for_model)
    r.add("POST", "/v1/predictions", create_for_version)
    r.add("GET", "/v1/predictions/{id}", get)
    r.add("POST", "/v1/predictions/{id}/cancel", cancel)
    r.add("GET", "/v1/predictions/{id}/stream", stream)
    r.add("GET", "/v1/models/{owner}/{name}", model_info)
    r.add("GET", "/v1/models/{owner}/{name}/versions/{version}", version_info)


def _version(version_id: str) -> dict[str, Any]:
    return {
        "id": version_id,
        "created_at": _iso(time.time()),
        "cog_version": "0.9.0",
        "openapi_schema": {
            "components": {"schemas": {
                "Input": {"type": "object", "properties": {"prompt": {"type": "string"},
                                                             "image": {"type": "string", "format": "uri"}}},
                "Output": {"type": "array", "items": {"type": "string"}, "x-cog-array-type": "iterator",
                           "x-cog-array-display": "concatenate"},
            }},
        },
    }
