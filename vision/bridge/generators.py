"""Image and video generators: OpenAI Images, the OpenAI videos API (opt-in) and Replicate models.

Every generator turns a :class:`GenerationRequest` into the model's own inputs (names, sizes,
durations and prices come from ``vision/data/generators.toml``, never from code branches), submits
it, and reports a :class:`RemoteJob` (status, logs, progress, outputs) that :mod:`vision.bridge.jobs`
polls, records and collects. Capabilities are attributes: ``can_resume`` (the provider keeps a job
that can be collected later), ``can_cancel``.

Replicate goes through the shared :class:`~vision.providers.replicate_api.ReplicateAPI` (creates
retried on 429/5xx honouring Retry-After; content-policy failures become ``RefusalError``), OpenAI
through the shared official client of :class:`~vision.providers.openai.OpenAIModel`.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import mimetypes
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..config import Config, GeneratorFacts, get_config
from ..errors import (
    BadResponseError,
    ConfigurationError,
    ModelCapabilityError,
    ProviderError,
    ProviderStatusError,
    ServiceGoneError,
    UnknownModelError,
)

log = logging.getLogger(__name__)

Kind = Literal["image", "video"]
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
DATA_URL_MAX_BYTES = 256 * 1024  # Replicate: larger files go through the files API
_DEPRECATION_LOGGED: set[str] = set()


@dataclass
class StartImage:
    """The first frame of an image-to-video job: a local file, and its https URL when it has one."""

    path: Path
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from ..util import sha256_hex

        return {"path": str(self.path), "url": self.url, "sha256": sha256_hex(self.path.read_bytes())}


@dataclass
class GenerationRequest:
    """What to make, in the toolkit's terms (each generator maps it to its own inputs)."""

    prompt: str
    negative_prompt: str | None = None
    count: int = 1
    seed: int | None = None
    aspect_ratio: str | None = None
    size: str | None = None
    output_format: str | None = None
    seconds: int | None = None
    image: StartImage | None = None
    disable_rewriter: bool = False


@dataclass
class RemoteJob:
    """A job as the provider reports it."""

    id: str | None
    status: str  # starting, processing, succeeded, failed, canceled
    logs: str | None = None
    progress: float | None = None  # 0..1 when known
    outputs: list[str] = field(default_factory=list)  # http(s) URLs, data: URIs, or provider refs
    error: str | None = None
    version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


class Generator:
    """Shared behaviour: the model table entry, input mapping, the cost estimate."""

    api: ClassVar[str] = ""
    can_resume: ClassVar[bool] = True
    can_cancel: ClassVar[bool] = True

    def __init__(self, preset: Any, model_id: str, facts: GeneratorFacts, *, config: Config,
                 poll_interval: float | None = None) -> None:
        self._poll_interval = poll_interval
        self.preset = preset
        self.provider = preset.name
        self.model_id = model_id
        self.name = f"{preset.name}/{model_id}"
        self.facts = facts
        self.kind: Kind = facts.kind
        self.config = config
        self.notes: list[str] = []  # what was adapted or ignored, for the record

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @property
    def poll_interval(self) -> float:
        """Seconds between status checks."""
        return self._poll_interval if self._poll_interval is not None else 1.0

    # -- inputs ---------------------------------------------------------------------------------

    def check(self, request: GenerationRequest) -> None:
        f = self.facts
        if request.count < 1:
            raise ValueError("the number of outputs must be at least 1")
        if self.kind == "video" and f.needs_image and request.image is None:
            raise ModelCapabilityError(self.name, "it makes videos from a start image only: generate an image "
                                       "first, or give one with --video-from PHOTO")
        if request.output_format and f.output_formats and request.output_format not in f.output_formats:
            raise ValueError(f"{self.name} writes {', '.join(f.output_formats)}, not {request.output_format!r}")

    def seconds(self, request: GenerationRequest) -> int | None:
        f = self.facts
        if self.kind != "video":
            return None
        seconds = request.seconds or f.default_seconds
        if request.seconds and f.durations and request.seconds not in f.durations:
            allowed = ", ".join(str(d) for d in f.durations)
            raise ValueError(f"{self.name} makes videos of {allowed} seconds, not {request.seconds}")
        return seconds

    def build_input(self, request: GenerationRequest) -> dict[str, Any]:
        """The model's own inputs for ``request`` (shown by ``--dry-run``; the start image elided)."""
        self.check(request)
        f, names = self.facts, self.facts.inputs
        self.notes = []
        inputs: dict[str, Any] = dict(f.fixed)
        inputs[names.prompt] = request.prompt
        if request.negative_prompt:
            if names.negative_prompt:
                inputs[names.negative_prompt] = request.negative_prompt
            else:
                self.notes.append("negative prompt not supported: not sent")
        if request.count > 1:
            if not names.count:
                raise ValueError(f"{self.name} makes one output per job; the pipeline splits counts into jobs")
            inputs[names.count] = request.count
        if request.seed is not None:
            if names.seed:
                inputs[names.seed] = request.seed
            else:
                self.notes.append("seed not supported: not sent (outputs are not reproducible)")
        if request.output_format and names.output_format:
            inputs[names.output_format] = request.output_format
        inputs.update(self._size_inputs(request))
        seconds = self.seconds(request)
        if seconds is not None and names.duration:
            inputs[names.duration] = seconds
        if request.image is not None:
            if not names.image:
                raise ModelCapabilityError(self.name, "it does not take a start image (text-to-video only)")
            inputs[names.image] = f"<start image {request.image.path.name}>"
        if request.disable_rewriter and names.rewriter:
            inputs[names.rewriter] = f.rewriter_off
            self.notes.append(f"the model's own prompt rewriter switched off ({names.rewriter}={f.rewriter_off!r})")
        return inputs

    def _size_inputs(self, request: GenerationRequest) -> dict[str, Any]:
        f, names = self.facts, self.facts.inputs
        ratio, size = request.aspect_ratio, request.size
        if size and not re.fullmatch(r"\d{2,5}x\d{2,5}", size):
            raise ValueError(f"size {size!r} is not WIDTHxHEIGHT, e.g. 1024x1024")
        if ratio and not re.fullmatch(r"\d{1,2}:\d{1,2}", ratio):
            raise ValueError(f"aspect ratio {ratio!r} is not W:H, e.g. 16:9")
        if not ratio and not size:
            return {}
        if names.aspect_ratio:
            ratio = ratio or _nearest_ratio(size or "", f.aspect_ratios)
            if f.aspect_ratios and ratio not in f.aspect_ratios:
                raise ValueError(f"{self.name} takes the aspect ratios {', '.join(f.aspect_ratios)}, not {ratio}")
            return {names.aspect_ratio: ratio}
        if names.size:
            if size:
                return {names.size: size}
            if ratio not in f.sizes:
                raise ValueError(f"{self.name} takes the aspect ratios {', '.join(f.sizes) or '(none)'}, not {ratio}"
                                 " (or give --size WxH)")
            return {names.size: f.sizes[ratio]}
        if names.width and names.height:
            if size:
                w, h = (int(x) for x in size.split("x"))
            else:
                rw, rh = (int(x) for x in (ratio or "1:1").split(":"))
                pixels = f.megapixels * 1024 * 1024
                w = round(math.sqrt(pixels * rw / rh) / 64) * 64
                h = round(math.sqrt(pixels * rh / rw) / 64) * 64
            return {names.width: w, names.height: h}
        self.notes.append("size and aspect ratio not supported: the model decides (from the start image)")
        return {}

    def estimate_usd(self, request: GenerationRequest) -> float | None:
        """The estimated cost of ``request``, or ``None`` when the table has no price."""
        f = self.facts
        if self.preset.free:
            return 0.0
        if self.kind == "video":
            seconds = self.seconds(request)
            if f.usd_per_second is not None and seconds:
                return f.usd_per_second * seconds * request.count
            if f.usd_per_run is not None:
                return f.usd_per_run * request.count
            return None
        if f.usd_per_image is not None:
            return f.usd_per_image * request.count
        if f.usd_per_run is not None:
            return f.usd_per_run
        return None

    # -- to implement ---------------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> RemoteJob:
        raise NotImplementedError

    def refresh(self, job_id: str) -> RemoteJob:
        raise NotImplementedError

    def cancel(self, job_id: str) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def open_output(self, ref: str, *, timeout: float) -> Iterator[tuple[str | None, int | None, Iterator[bytes]]]:
        """Stream one output: ``(content type, length or None, byte chunks)``; ``data:`` and http(s)."""
        if ref.startswith("data:"):
            mime, data = decode_data_url(ref)
            yield mime, len(data), iter([data])
            return
        if not ref.startswith(("http://", "https://")):
            raise BadResponseError(f"unsupported output reference {ref[:40]!r}", provider=self.provider,
                                   model=self.model_id)
        import httpx

        # No Authorization header: output URLs are signed delivery links, often on another host.
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)), follow_redirects=True) as c, \
                c.stream("GET", ref) as resp:
            if resp.status_code >= 400:
                raise ProviderStatusError(f"output download failed: {ref}", provider=self.provider,
                                          model=self.model_id, status_code=resp.status_code)
            length = resp.headers.get("content-length")
            yield resp.headers.get("content-type"), int(length) if length else None, resp.iter_bytes(64 * 1024)


# -- Replicate -----------------------------------------------------------------------------------------


class ReplicateGenerator(Generator):
    """Replicate image and video models (``replicate/<owner>/<name>[:<version>]``)."""

    api = "replicate"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.model_id.count("/") != 1 or not all(self.model_id.split(":", 1)[0].split("/")):
            raise UnknownModelError(self.name, "Replicate models are named replicate/<owner>/<name>[:<version>]")
        self._api: Any = None

    def client(self) -> Any:
        from ..providers.replicate_api import ReplicateAPI

        if self._api is None:
            self._api = ReplicateAPI(self.preset, self.config, poll_interval=self._poll_interval)
        return self._api

    @property
    def poll_interval(self) -> float:
        return float(self.client().poll_interval)

    def wire_input(self, request: GenerationRequest) -> dict[str, Any]:
        inputs = self.build_input(request)
        if request.image is not None and self.facts.inputs.image:
            inputs[self.facts.inputs.image] = self._image_ref(request.image)
        return inputs

    def _image_ref(self, image: StartImage) -> str:
        if image.url and image.url.startswith("https://"):
            return image.url
        data = image.path.read_bytes()
        mime = mimetypes.guess_type(image.path.name)[0] or "application/octet-stream"
        if len(data) <= DATA_URL_MAX_BYTES:
            return f"data:{mime};base64,{base64.b64encode(data).decode()}"
        api = self.client()
        with image.path.open("rb") as fh:
            uploaded = api.call(lambda: api.client.files.create(fh, content_type=mime), model_label=self.model_id,
                                retry_post=False)
        return str(uploaded.urls["get"])

    def submit(self, request: GenerationRequest) -> RemoteJob:
        api = self.client()
        prediction = api.create_prediction(self.model_id, self.wire_input(request), model_label=self.model_id)
        return self._remote(prediction)

    def refresh(self, job_id: str) -> RemoteJob:
        api = self.client()
        prediction = api.call(lambda: api.client.predictions.get(job_id), model_label=self.model_id)
        return self._remote(prediction)

    def cancel(self, job_id: str) -> None:
        api = self.client()
        api.call(lambda: api.client.predictions.cancel(job_id), model_label=self.model_id)

    def failure(self, job: RemoteJob) -> ProviderError:
        """The typed error for a failed prediction (a ``RefusalError`` for a content-policy failure)."""
        from types import SimpleNamespace

        prediction = SimpleNamespace(id=job.id, status=job.status, logs=job.logs)  # what failure() reads
        return self.client().failure(prediction, job.error or job.status, model_label=self.model_id)

    def _remote(self, prediction: Any) -> RemoteJob:
        status = "canceled" if prediction.status == "aborted" else str(prediction.status)
        progress = prediction.progress.percentage if prediction.progress else None
        if status == "succeeded":
            progress = 1.0
        outputs = _flatten_outputs(prediction.output) if status == "succeeded" else []
        return RemoteJob(prediction.id, status, prediction.logs, progress, outputs, prediction.error,
                         prediction.version, dict(prediction.metrics or {}))


def _flatten_outputs(output: Any) -> list[str]:
    if isinstance(output, str):
        return [output] if output.startswith(("http://", "https://", "data:")) else []
    if isinstance(output, dict):
        return [x for v in output.values() for x in _flatten_outputs(v)]
    if isinstance(output, (list, tuple)):
        return [x for v in output for x in _flatten_outputs(v)]
    return []


# -- OpenAI ----------------------------------------------------------------------------------------------


class _OpenAIBase(Generator):
    def _model(self) -> Any:
        from ..providers.openai import OpenAIModel

        return OpenAIModel(self.preset, self.model_id, config=self.config)

    def client(self) -> Any:
        return self._model().client()

    def map_error(self, exc: Exception) -> ProviderError:
        return self._model()._map_error(exc)


class OpenAIImageGenerator(_OpenAIBase):
    """OpenAI Images (``images.generate``; GPT-image models answer with ``b64_json``). Synchronous: the
    images arrive with the answer, so there is no provider job to resume."""

    api = "openai-images"
    can_resume = False
    can_cancel = False

    def submit(self, request: GenerationRequest) -> RemoteJob:
        inputs = self.build_input(request)
        client = self.client()
        try:
            response = client.images.generate(model=self.model_id, **inputs)
        except Exception as exc:
            raise self.map_error(exc) from exc
        fmt = getattr(response, "output_format", None) or request.output_format or self.facts.output_ext
        outputs = []
        for item in response.data or []:
            if item.b64_json:
                outputs.append(f"data:image/{'jpeg' if fmt == 'jpg' else fmt};base64,{item.b64_json}")
            elif item.url:
                outputs.append(item.url)
        if not outputs:
            raise BadResponseError("the image answer holds no image", provider=self.provider, model=self.model_id)
        metrics = response.usage.model_dump() if getattr(response, "usage", None) else {}
        return RemoteJob(getattr(response, "_request_id", None), "succeeded", None, 1.0, outputs, metrics=metrics)


class OpenAIVideoGenerator(_OpenAIBase):
    """The OpenAI videos (Sora) API, deprecated in openai 3.x: used only when named, its deprecation
    warning kept out of the caller's way, and a clear :class:`ServiceGoneError` once it is gone."""

    api = "openai-videos"

    @contextlib.contextmanager
    def _deprecated_api(self) -> Iterator[None]:
        if self.name not in _DEPRECATION_LOGGED:
            _DEPRECATION_LOGGED.add(self.name)
            log.warning("%s: %s", self.name, self.facts.deprecated or "the OpenAI videos API is deprecated")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*Sora API.*")
            yield

    def _call(self, fn: Any) -> Any:
        try:
            with self._deprecated_api():
                return fn()
        except Exception as exc:
            raise self._gone(exc) or self.map_error(exc) from exc

    def _gone(self, exc: Exception) -> ProviderError | None:
        status = getattr(exc, "status_code", None)
        text = str(getattr(exc, "message", exc)).lower()
        if status == 410 or (status == 404 and any(w in text for w in ("shut down", "no longer", "retired"))):
            return ServiceGoneError(
                "the OpenAI videos (Sora) API is no longer available (it was scheduled to shut down on "
                "2026-09-24): choose a Replicate video model, e.g. --video-model replicate/kwaivgi/kling-v2.1",
                provider=self.provider, model=self.model_id, status_code=status)
        return None

    def submit(self, request: GenerationRequest) -> RemoteJob:
        inputs = self.build_input(request)
        names = self.facts.inputs
        if names.duration and names.duration in inputs:
            inputs[names.duration] = str(inputs[names.duration])  # the API takes "4", "8", "12"
        if request.image is not None and names.image:
            mime = mimetypes.guess_type(request.image.path.name)[0] or "image/png"
            inputs[names.image] = (request.image.path.name, request.image.path.read_bytes(), mime)
        client = self.client()
        video = self._call(lambda: client.videos.create(model=self.model_id, **inputs))
        return self._remote(video)

    def refresh(self, job_id: str) -> RemoteJob:
        client = self.client()
        return self._remote(self._call(lambda: client.videos.retrieve(job_id)))

    def cancel(self, job_id: str) -> None:
        client = self.client()
        self._call(lambda: client.videos.delete(job_id))

    def failure(self, job: RemoteJob) -> ProviderError:
        from ..errors import ModelRunError, RefusalError

        kw = {"provider": self.provider, "model": self.model_id}
        error = job.error or "failed"
        if any(w in error.lower() for w in ("moderation", "policy", "safety")):
            return RefusalError(f"video {job.id} refused: {error}", reason=error, **kw)
        return ModelRunError(f"video {job.id} failed: {error}", prediction_id=job.id, **kw)

    def _remote(self, video: Any) -> RemoteJob:
        status = {"queued": "starting", "in_progress": "processing", "completed": "succeeded"}.get(video.status,
                                                                                                  video.status)
        error = None
        if video.error is not None:
            error = f"{video.error.code}: {video.error.message}"
        outputs = [f"openai-video:{video.id}"] if status == "succeeded" else []
        return RemoteJob(video.id, status, None, (video.progress or 0) / 100, outputs, error, str(video.model))

    @contextlib.contextmanager
    def open_output(self, ref: str, *, timeout: float) -> Iterator[tuple[str | None, int | None, Iterator[bytes]]]:
        if not ref.startswith("openai-video:"):
            with super().open_output(ref, timeout=timeout) as out:
                yield out
            return
        video_id = ref.split(":", 1)[1]
        client = self.client()
        try:
            with self._deprecated_api(), \
                    client.videos.with_streaming_response.download_content(video_id) as resp:
                length = resp.headers.get("content-length")
                yield resp.headers.get("content-type"), int(length) if length else None, resp.iter_bytes(64 * 1024)
        except ProviderError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("openai"):
                raise self._gone(exc) or self.map_error(exc) from exc
            raise


# -- lookup ------------------------------------------------------------------------------------------------

_CLASSES: dict[tuple[str, str], type[Generator]] = {
    ("replicate", "image"): ReplicateGenerator,
    ("replicate", "video"): ReplicateGenerator,
    ("openai", "image"): OpenAIImageGenerator,
    ("openai", "video"): OpenAIVideoGenerator,
}


def known_generators(kind: Kind, config: Config | None = None) -> list[str]:
    """Generator names for a picker: the default (``image_model`` / ``video_model``) first, then every
    entry of the generator table that names one model (a glob only by its trailing ``*``), neither retired
    nor deprecated."""
    config = config or get_config()
    out = [config.settings.image_model if kind == "image" else config.settings.video_model]
    for facts in config.generators:
        name = facts.match.removesuffix("*")
        if (facts.kind != kind or facts.retired or facts.deprecated or not facts.provider or not name
                or name.endswith(("-", "/"))
                or any(c in name for c in "*?[")):
            continue
        full = f"{facts.provider}/{name}"
        if full not in out:
            out.append(full)
    return out


def get_generator(name: str | None, kind: Kind, *, config: Config | None = None, **kwargs: Any) -> Generator:
    """The generator called ``name`` (default: ``settings.image_model`` / ``settings.video_model``)."""
    config = config or get_config()
    name = name or (config.settings.image_model if kind == "image" else config.settings.video_model)
    preset, model_id = config.resolve_model(name)
    facts = config.generator_facts(preset.name, model_id)
    if facts is not None and facts.retired:
        raise UnknownModelError(f"{preset.name}/{model_id}", facts.retired)
    if facts is None:
        log.warning("%s/%s is not in the generator table: sending only the prompt; price unknown",
                    preset.name, model_id)
        facts = GeneratorFacts(match=model_id, provider=preset.name, kind=kind)
    if facts.kind != kind:
        raise ModelCapabilityError(f"{preset.name}/{model_id}", f"it makes {facts.kind}s, not {kind}s")
    cls = _CLASSES.get((preset.kind, kind))
    if cls is None:
        raise ConfigurationError(f"{name}: the {preset.name} provider cannot generate {kind}s; use an OpenAI "
                                 "or Replicate model (see vision/data/generators.toml)")
    return cls(preset, model_id, facts, config=config, **kwargs)


def decode_data_url(url: str) -> tuple[str | None, bytes]:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:"):
        raise ValueError("not a data: URL")
    mime = header[5:].split(";")[0] or None
    try:
        data = base64.b64decode(payload, validate=True) if ";base64" in header else payload.encode()
    except ValueError as exc:
        raise ValueError(f"bad base64 in a data: URL ({exc})") from exc
    return mime, data


def _nearest_ratio(size: str, allowed: list[str]) -> str:
    w, h = (int(x) for x in size.split("x"))
    if not allowed:
        g = math.gcd(w, h)
        return f"{w // g}:{h // g}"

    def dist(r: str) -> float:
        a, b = (int(x) for x in r.split(":"))
        return abs(math.log((w / h) / (a / b)))

    return min(allowed, key=dist)
