"""The OpenAI API as the fake server speaks it: chat completions (plain and SSE streams with the
usage chunk and ``[DONE]``), models, and errors in OpenAI's own shape."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .http import Request, Response, StreamResponse, paced, sse
from .schema_fake import instance
from .server import ReceivedImage, Script, describe_image

if TYPE_CHECKING:
    from .server import FakeServer

ROLES = {"system", "developer", "user", "assistant", "tool"}


def error(status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None,
          param: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return Response(status, body, headers=headers or {})


def status_error(reply: Script, request_id: str) -> Response:
    status = reply.status or 500
    headers = {"x-request-id": request_id}
    if status == 429:
        if reply.retry_after_ms is not None:
            headers["retry-after-ms"] = str(reply.retry_after_ms)
        if reply.retry_after is not None:
            headers["retry-after"] = str(reply.retry_after)
        return error(429, reply.error or "Rate limit reached for requests. Please try again shortly.",
                     type_="requests", code="rate_limit_exceeded", headers=headers)
    if status == 401:
        return error(401, reply.error or "Incorrect API key provided.", code="invalid_api_key", headers=headers)
    if status == 404:
        return error(404, reply.error or "The model does not exist or you do not have access to it.",
                     code="model_not_found", headers=headers)
    if status >= 500:
        return error(status, reply.error or "The server had an error while processing your request.",
                     type_="server_error", headers=headers)
    return error(status, reply.error or f"Request failed with status {status}.", headers=headers)


def image_tokens(img: ReceivedImage) -> int:
    if img.detail == "low" or not img.width or not img.height:
        return 85
    return 85 + 170 * math.ceil(img.width / 512) * math.ceil(img.height / 512)


def default_answer(model: str, texts: list[str], images: list[ReceivedImage]) -> str:
    question = texts[-1].strip() if texts else ""
    if images:
        seen = ", ".join(f"{i.width}x{i.height} {i.format or 'unreadable'}" for i in images)
        looked = f"I received {len(images)} image(s) ({seen})."
    else:
        looked = "I received no image."
    return f"[{model}] {looked} You asked: {question!r}"


def structured_or_default(body: dict[str, Any], model: str, texts: list[str], images: list[ReceivedImage]) -> str:
    """A JSON instance of the requested schema (structured outputs), else the default answer."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return json.dumps(instance((fmt.get("json_schema") or {}).get("schema") or {}, model=model))
    if fmt.get("type") == "json_object":
        return json.dumps({"answer": default_answer(model, texts, images)})
    return default_answer(model, texts, images)


def parse_messages(body: dict[str, Any]) -> tuple[list[str], list[ReceivedImage], str | None]:
    """User texts, images, and the first validation error (OpenAI's wording), if any."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return [], [], "'messages' must be a non-empty array"
    texts: list[str] = []
    images: list[ReceivedImage] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            return [], [], f"Invalid value for 'messages[{i}].role'."
        content = msg.get("content")
        if isinstance(content, str):
            if msg["role"] == "user":
                texts.append(content)
            continue
        if not isinstance(content, list):
            return [], [], f"Invalid type for 'messages[{i}].content': expected a string or an array."
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if msg["role"] == "user":
                    texts.append(str(part.get("text", "")))
            elif kind == "image_url":
                image_url = part.get("image_url") or {}
                url = image_url.get("url", "") if isinstance(image_url, dict) else ""
                detail = image_url.get("detail") if isinstance(image_url, dict) else None
                if detail not in (None, "low", "high", "auto"):
                    return [], [], f"Invalid value for 'messages[{i}].content[{j}].image_url.detail'."
                if url.startswith("data:"):
                    if not re.match(r"^data:image/(jpeg|png|gif|webp);base64,", url):
                        return [], [], "Invalid image data URL: expected data:image/<jpeg|png|gif|webp>;base64,..."
                    images.append(describe_image(url, detail))
                elif not url.startswith(("http://", "https://")):
                    return [], [], f"Invalid 'messages[{i}].content[{j}].image_url.url'."
            else:
                return [], [], f"Invalid value for 'messages[{i}].content[{j}].type': {kind!r}."
    return texts, images, None


def register(server: FakeServer) -> None:
    def models(req: Request) -> Response:
        if not server.check_key(req):
            return error(401, "Incorrect API key provided.", code="invalid_api_key")
        now = int(time.time())
        names = ["gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini"]
        data = [{"id": n, "object": "model", "created": now, "owned_by": "fake"} for n in names]
        return Response(200, {"object": "list", "data": data})

    def chat(req: Request) -> Response | StreamResponse:
        request_id = server.next_id("req_")
        if not server.check_key(req):
            server.record("openai", req)
            return error(401, "Incorrect API key provided.", code="invalid_api_key",
                         headers={"x-request-id": request_id})
        try:
            body = req.json()
        except ValueError:
            server.record("openai", req)
            return error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            server.record("openai", req)
            return error(400, "you must provide a model parameter", param="model")
        model = body["model"]
        texts, images, problem = parse_messages(body)
        server.record("openai", req, model=model, images=images, texts=texts)
        if problem:
            return error(400, problem, param="messages", headers={"x-request-id": request_id})
        reply = server.reply_for(model)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status:
            return status_error(reply, request_id)
        if reply.fault == "missing":
            return status_error(Script(status=404), request_id)
        if reply.fault == "novision" and images:
            return error(400, "Invalid content type. image_url is only supported by certain models.",
                         param="messages", headers={"x-request-id": request_id})
        text = reply.text if reply.text is not None else structured_or_default(body, model, texts, images)
        if reply.fault == "empty":
            text = ""
        prompt_tokens = sum(len(t) // 4 + 4 for t in texts) + sum(image_tokens(i) for i in images)
        usage = reply.usage or {"prompt_tokens": prompt_tokens, "completion_tokens": max(1, len(text) // 4),
                                "total_tokens": prompt_tokens + max(1, len(text) // 4)}
        usage.setdefault("total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
        completion_id = server.next_id("chatcmpl-")
        created = int(time.time())
        headers = {"x-request-id": request_id, "openai-processing-ms": str(int(reply.delay * 1000))}
        refusal = "I can't help with that." if reply.fault == "refuse" else None

        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = _stream_chunks(completion_id, created, model, text, refusal, usage if include_usage else None)
            return StreamResponse(paced(chunks, reply.chunk_delay or server.stream_chunk_delay), headers=headers,
                                  drop_after_chunks=2 if reply.fault == "drop" else None)

        message: dict[str, Any] = {"role": "assistant", "content": None if refusal else text, "refusal": refusal,
                                   "annotations": []}
        payload = {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "stop"}],
            "usage": usage, "system_fingerprint": "fp_fake", "service_tier": "default",
        }
        if reply.fault == "malformed":
            return Response(200, json.dumps(payload)[:40].encode(), headers=headers, content_type="application/json")
        resp = Response(200, payload, headers=headers)
        if reply.fault == "drop":
            resp.drop_after = 20
        return resp

    server.router.add("GET", "/v1/models", models)
    server.router.add("POST", "/v1/chat/completions", chat)


def _stream_chunks(cid: str, created: int, model: str, text: str, refusal: str | None,
                   usage: dict[str, int] | None) -> Iterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse(json.dumps({
            "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }))

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    if refusal:
        yield chunk({"refusal": refusal})
    else:
        for piece in re.findall(r"\S+\s*|\s+", text):
            yield chunk({"content": piece})
    yield chunk({}, "stop")
    if usage is not None:
        yield sse(json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                              "choices": [], "usage": usage}))
    yield sse("[DONE]")
