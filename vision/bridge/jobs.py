"""Generation jobs: on disk before they are submitted, updated as they run, collectable after a crash.

A paid generation is never dropped. :class:`JobRunner` writes the job to ``<data dir>/jobs/<id>.json``
(status ``created``) *before* it submits anything, records the provider's job id the moment it has
one, and then polls (status, logs, progress) until the job ends or the time limit passes; a job that
outlives the limit, or the process, stays at the provider and ``vision jobs resume`` collects it.
Ctrl-C asks whether to cancel at the provider too. Outputs (``data:`` URIs or http(s) URLs) are
streamed to a temporary file, checked against the announced length, retried when the connection
drops, and renamed into place only when complete, each with its provenance sidecar and a line in
the output directory's ``index.jsonl``.

Statuses: ``created`` (recorded, not yet submitted) -> ``starting``/``processing`` (at the
provider) -> ``downloading`` -> ``completed``; or ``failed``, ``canceled``, ``lost`` (the process
stopped while submitting to an API that keeps no job, so there is nothing to collect).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Config, get_config
from ..errors import (
    GenerationError,
    GenerationInterrupted,
    GenerationTimeoutError,
    ModelRunError,
    OutputDownloadError,
    ProviderConnectionError,
    ProviderError,
    ProviderStatusError,
    ProviderTimeoutError,
    VisionError,
)
from ..util import atomic_write_bytes, atomic_write_text, sha256_hex
from .generators import GenerationRequest, Generator, RemoteJob, get_generator
from .provenance import SCHEMA, append_index, configured_secrets, dumps, embed_png, scrub, write_sidecar

log = logging.getLogger(__name__)

ACTIVE = frozenset({"created", "starting", "processing", "downloading"})
FINAL = frozenset({"completed", "failed", "canceled", "lost"})
LOG_TAIL_CHARS = 4000
MAX_POLL_FAILURES = 5

_MAGIC: list[tuple[int, bytes, str]] = [
    (0, b"\x89PNG\r\n\x1a\n", "png"), (0, b"\xff\xd8\xff", "jpg"), (0, b"GIF8", "gif"),
    (8, b"WEBP", "webp"), (4, b"ftyp", "mp4"), (0, b"\x1aE\xdf\xa3", "webm"),
]
_MIME_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif",
             "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov"}


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


@dataclass
class Job:
    """One generation job as recorded on disk."""

    id: str
    kind: str
    generator: str
    api: str
    out_dir: str
    stem: str
    status: str = "created"
    provider_job_id: str | None = None
    created_at: float = field(default_factory=time.time)
    submitted_at: float | None = None
    updated_at: float | None = None
    finished_at: float | None = None
    inputs: dict[str, Any] = field(default_factory=dict)  # the model's own inputs (start image elided)
    request: dict[str, Any] = field(default_factory=dict)  # count, seed, size, seconds, start image...
    context: dict[str, Any] = field(default_factory=dict)  # source, writer, prompt, parent: for provenance
    estimated_cost_usd: float | None = None
    logs: str | None = None
    progress: float | None = None
    error: str | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def files(self) -> list[Path]:
        return [Path(o["file"]) for o in sorted(self.outputs, key=lambda o: o["index"])]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at_iso"] = iso(self.created_at)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def start_request(self) -> GenerationRequest:
        """The request again (for a job recorded but never submitted)."""
        from .generators import StartImage

        r = dict(self.request)
        image = r.pop("image", None)
        start = StartImage(Path(image["path"]), image.get("url")) if image else None
        return GenerationRequest(**{k: v for k, v in r.items() if k in GenerationRequest.__dataclass_fields__},
                                 image=start)


class JobStore:
    """Jobs as JSON files under ``<data dir>/jobs`` (written atomically, API keys scrubbed)."""

    def __init__(self, root: str | Path | None = None, *, config: Config | None = None) -> None:
        self.config = config or get_config()
        self.root = Path(root) if root else self.config.data_dir / "jobs"
        self._secrets = configured_secrets(self.config)

    def path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.json"

    def save(self, job: Job) -> None:
        job.updated_at = time.time()
        atomic_write_text(self.path(job.id), dumps(scrub(job.to_dict(), self._secrets), indent=2) + "\n")

    def get(self, job_id: str) -> Job:
        """The job with this id or unique id prefix."""
        job_id = job_id.strip()
        if not re.fullmatch(r"[0-9a-f]{1,32}", job_id):
            raise ValueError(f"{job_id!r} is not a job id (see `vision jobs`)")
        exact = self.path(job_id)
        matches = [exact] if exact.is_file() else sorted(self.root.glob(f"{job_id}*.json"))
        if len(matches) != 1:
            what = "no job" if not matches else "more than one job"
            raise ValueError(f"{what} matches {job_id!r}; see `vision jobs`")
        return self._load(matches[0])

    def list(self, *, active_only: bool = False, limit: int | None = None) -> list[Job]:
        """Newest first."""
        if not self.root.is_dir():
            return []
        jobs = []
        for p in self.root.glob("*.json"):
            try:
                job = self._load(p)
            except (OSError, ValueError, TypeError) as exc:
                log.warning("skipping unreadable job file %s: %s", p, exc)
                continue
            if not active_only or job.active:
                jobs.append(job)
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit] if limit else jobs

    @staticmethod
    def _load(path: Path) -> Job:
        return Job.from_dict(json.loads(path.read_text(encoding="utf-8")))


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


def slug(text: str, length: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (s[:length].rstrip("-") or "generation")


class JobRunner:
    """Submits, polls, cancels and collects jobs, keeping their record on disk up to date.

    ``on_update(job)`` is called whenever the status, progress or logs change (for a progress bar);
    ``confirm_cancel(job)`` is asked on Ctrl-C (``True``: cancel at the provider too; default: leave
    the job running so that it can be resumed).
    """

    def __init__(self, store: JobStore | None = None, *, config: Config | None = None, timeout: float | None = None,
                 on_update: Callable[[Job], None] | None = None,
                 confirm_cancel: Callable[[Job], bool] | None = None,
                 generator_kwargs: dict[str, Any] | None = None) -> None:
        self.config = config or get_config()
        self.store = store or JobStore(config=self.config)
        self.timeout = timeout or self.config.settings.generation_timeout
        self.on_update = on_update
        self.confirm_cancel = confirm_cancel
        self.generator_kwargs = generator_kwargs or {}
        self._secrets = configured_secrets(self.config)

    # -- creating and running -----------------------------------------------------------------------

    def create(self, generator: Generator, request: GenerationRequest, *, out_dir: str | Path,
               context: dict[str, Any], label: str) -> Job:
        """Record a job on disk (status ``created``) without submitting it."""
        inputs = generator.build_input(request)
        req = {k: v for k, v in asdict(request).items() if k not in {"image", "prompt", "negative_prompt"}}
        if request.image is not None:
            req["image"] = request.image.to_dict()
        job_id = new_job_id()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        job = Job(job_id, generator.kind, generator.name, generator.api, str(Path(out_dir).resolve()),
                  f"{stamp}-{slug(label)}-{job_id[:6]}", inputs=_elide(inputs), request=req, context=context,
                  estimated_cost_usd=generator.estimate_usd(request), notes=list(generator.notes))
        self.store.save(job)
        return job

    def run(self, job: Job, generator: Generator, request: GenerationRequest) -> list[Path]:
        """Submit a created job, wait for it and collect its outputs; returns the files written."""
        try:
            remote = generator.submit(request)
        except KeyboardInterrupt:
            job.error = "interrupted while submitting: it may or may not have reached the provider"
            self.store.save(job)
            raise GenerationInterrupted(job.error, job_id=job.id) from None
        except VisionError as exc:
            job.status, job.error, job.finished_at = "failed", str(exc), time.time()
            self.store.save(job)
            raise
        job.provider_job_id = remote.id
        job.submitted_at = time.time()
        self._apply(job, remote)
        log.info("job %s submitted to %s as %s", job.id, job.generator, remote.id)
        remote = self.wait(job, generator, remote)
        return self.collect(job, generator, remote)

    def wait(self, job: Job, generator: Generator, remote: RemoteJob | None = None,
             timeout: float | None = None) -> RemoteJob:
        """Poll until the job ends at the provider; raises on failure, time limit or Ctrl-C."""
        deadline = time.monotonic() + (timeout or self.timeout)
        failures = 0
        try:
            if remote is None:
                remote = self._refresh(job, generator)
            while not remote.done:
                if time.monotonic() > deadline:
                    job.error = f"still {remote.status} after {timeout or self.timeout:g} s"
                    self.store.save(job)
                    raise GenerationTimeoutError(
                        f"{job.generator} is still {remote.status} after {timeout or self.timeout:g} s; it keeps "
                        f"running at the provider: `vision jobs resume {job.id}` collects it later, "
                        f"`vision jobs cancel {job.id}` stops it", job_id=job.id, logs=job.logs)
                time.sleep(generator.poll_interval)
                try:
                    remote = self._refresh(job, generator)
                    failures = 0
                except (ProviderConnectionError, ProviderTimeoutError) as exc:
                    failures += 1
                    if failures >= MAX_POLL_FAILURES:
                        raise
                    log.warning("job %s: polling failed (%s); trying again", job.id, exc)
        except KeyboardInterrupt:
            self._interrupted(job, generator)
        if remote.status == "failed":
            error = generator.failure(remote) if hasattr(generator, "failure") else None
            job.status, job.finished_at = "failed", time.time()
            job.error = str(error) if error else (remote.error or "failed")
            self.store.save(job)
            if isinstance(error, ModelRunError) or error is None:
                raise GenerationError(f"{job.generator} failed: {remote.error or 'no reason given'}",
                                      job_id=job.id, logs=remote.logs) from error
            raise error
        if remote.status == "canceled":
            job.status, job.finished_at = "canceled", time.time()
            self.store.save(job)
            raise GenerationError(f"{job.generator}: canceled at the provider", job_id=job.id, logs=remote.logs)
        return remote

    def _refresh(self, job: Job, generator: Generator) -> RemoteJob:
        if not job.provider_job_id:
            raise GenerationError("no provider job id was recorded", job_id=job.id)
        remote = generator.refresh(job.provider_job_id)
        self._apply(job, remote)
        return remote

    def _apply(self, job: Job, remote: RemoteJob) -> None:
        if remote.status in {"starting", "processing"}:
            status = remote.status
        else:  # a terminal status is the runner's to record (after collecting or failing)
            status = "processing" if job.status == "created" else job.status
        logs = remote.logs[-LOG_TAIL_CHARS:] if remote.logs else job.logs
        changed = (status, remote.progress, logs) != (job.status, job.progress, job.logs)
        job.status, job.progress, job.logs = status, remote.progress, logs
        job.version = remote.version or job.version
        job.metrics = remote.metrics or job.metrics
        if changed or job.updated_at is None:
            self.store.save(job)
            if self.on_update:
                self.on_update(job)

    def _interrupted(self, job: Job, generator: Generator) -> None:
        cancel = False
        if generator.can_cancel and job.provider_job_id and self.confirm_cancel:
            try:
                cancel = self.confirm_cancel(job)
            except (KeyboardInterrupt, EOFError):
                cancel = False
        if cancel:
            assert job.provider_job_id
            try:
                generator.cancel(job.provider_job_id)
            except ProviderError as exc:
                job.error = f"cancel failed: {exc}"
                self.store.save(job)
                raise GenerationInterrupted(f"interrupted; canceling at the provider failed ({exc}); "
                                            f"`vision jobs cancel {job.id}` tries again", job_id=job.id) from None
            job.status, job.finished_at, job.error = "canceled", time.time(), "canceled by the user"
            self.store.save(job)
            raise GenerationInterrupted("interrupted; canceled at the provider", job_id=job.id, canceled=True)
        self.store.save(job)
        raise GenerationInterrupted(f"interrupted; the job keeps running at the provider: `vision jobs resume "
                                    f"{job.id}` collects it", job_id=job.id)

    # -- collecting -----------------------------------------------------------------------------------

    def collect(self, job: Job, generator: Generator, remote: RemoteJob) -> list[Path]:
        """Download every output of a finished job (skipping the ones already saved)."""
        if not remote.outputs:
            job.status, job.error, job.finished_at = "failed", "the job succeeded without any output", time.time()
            self.store.save(job)
            raise GenerationError(f"{job.generator} succeeded without any output", job_id=job.id, logs=remote.logs)
        job.status = "downloading"
        self.store.save(job)
        saved = {o["index"] for o in job.outputs}
        for i, ref in enumerate(remote.outputs):
            if i not in saved:
                self._save_output(job, generator, remote, ref, i)
        job.status, job.finished_at, job.error = "completed", time.time(), None
        self.store.save(job)
        if self.on_update:
            self.on_update(job)
        return job.files

    def _save_output(self, job: Job, generator: Generator, remote: RemoteJob, ref: str, index: int) -> Path:
        out_dir = Path(job.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp, ext, mime = self.download(job, generator, ref, out_dir)
        n = len(remote.outputs)
        final = out_dir / f"{job.stem}{f'-{index + 1}' if n > 1 else ''}.{ext}"
        record = self.provenance(job, index, n, ref)
        try:
            if ext == "png":
                atomic_write_bytes(final, embed_png(tmp.read_bytes(), dumps(record)))
            else:
                tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)
        final.chmod(0o644)  # a gallery file, not a secret (atomic writes start at 0600)
        data = final.read_bytes()
        info = {"name": final.name, "mime": mime, "bytes": len(data), "sha256": sha256_hex(data)}
        write_sidecar(final, info, record).chmod(0o644)
        append_index(out_dir, scrub({
            "file": final.name, "sidecar": final.name + ".json", "kind": job.kind, "generator": job.generator,
            "prompt": record["prompt"], "source": record["source"], "job_id": job.id,
            "estimated_cost_usd": record["estimated_cost_usd"], "created_at": record["created_at"],
            "sha256": info["sha256"], "parent": record.get("parent"),
        }, self._secrets))
        job.outputs.append({"index": index, "file": str(final), "sha256": info["sha256"], "bytes": info["bytes"],
                            "ref": _elide_ref(ref)})
        self.store.save(job)
        log.info("job %s: saved %s", job.id, final)
        return final

    def download(self, job: Job, generator: Generator, ref: str, out_dir: Path) -> tuple[Path, str, str | None]:
        """Stream one output to a temporary file in ``out_dir``, retrying dropped connections."""
        import httpx

        attempts = self.config.settings.max_retries + 1
        last: Exception | None = None
        for attempt in range(attempts):
            tmp = out_dir / f".{job.stem}.{uuid.uuid4().hex[:6]}.part"
            try:
                with generator.open_output(ref, timeout=self.config.settings.timeout) as (ctype, length, chunks), \
                        tmp.open("wb") as fh:
                    written = 0
                    head = b""
                    for chunk in chunks:
                        if len(head) < 16:
                            head += chunk[:16]
                        fh.write(chunk)
                        written += len(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
                if length is not None and written != length:
                    raise _Incomplete(f"got {written} of {length} bytes")
                if written == 0:
                    raise _Incomplete("empty download")
                ext = _sniff(head) or _MIME_EXT.get((ctype or "").split(";")[0].strip()) or _url_ext(ref) \
                    or str(job.request.get("output_format") or "") or "bin"
                ext = "jpg" if ext == "jpeg" else ext
                mime = next((m for m, e in _MIME_EXT.items() if e == ext), ctype)
                return tmp, ext, mime
            except (httpx.TransportError, _Incomplete, ProviderConnectionError, ProviderTimeoutError) as exc:
                last = exc
            except ProviderStatusError as exc:
                if (exc.status_code or 0) < 500:
                    tmp.unlink(missing_ok=True)
                    raise OutputDownloadError(f"cannot download {_elide_ref(ref)}: {exc}", job_id=job.id,
                                              url=_elide_ref(ref), attempts=attempt + 1) from exc
                last = exc
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            tmp.unlink(missing_ok=True)
            if attempt + 1 < attempts:
                delay = min(4.0, 0.25 * 2**attempt)
                log.warning("job %s: download of %s failed (%s); retrying in %.2f s", job.id, _elide_ref(ref),
                            last, delay)
                time.sleep(delay)
        raise OutputDownloadError(f"cannot download {_elide_ref(ref)} after {attempts} attempts ({last}); "
                                  f"`vision jobs resume {job.id}` tries again", job_id=job.id, url=_elide_ref(ref),
                                  attempts=attempts) from last

    def provenance(self, job: Job, index: int, total: int, ref: str) -> dict[str, Any]:
        """The provenance record of output ``index`` of ``job``."""
        from .. import __version__

        ctx = job.context
        provider, _, model = job.generator.partition("/")
        duration = (job.finished_at or time.time()) - job.submitted_at if job.submitted_at else None
        record = {
            "schema": SCHEMA,
            "kind": job.kind,
            "source": ctx.get("source"),
            "writer": ctx.get("writer"),
            "prompt": ctx.get("prompt"),
            "negative_prompt": ctx.get("negative_prompt"),
            "generator": {"provider": provider, "model": model, "version": job.version, "api": job.api},
            "inputs": job.inputs,
            "seed": job.request.get("seed"),
            "job_id": job.id,
            "provider_job_id": job.provider_job_id,
            "output_index": index,
            "outputs_in_job": total,
            "timings": {"created_at": iso(job.created_at), "submitted_at": iso(job.submitted_at),
                        "collected_at": iso(time.time()),
                        "duration_ms": round(duration * 1000) if duration is not None else None,
                        "predict_time_s": job.metrics.get("predict_time")},
            "estimated_cost_usd": job.estimated_cost_usd,
            "notes": job.notes,
            "parent": ctx.get("parent"),
            "output_ref": _elide_ref(ref),
            "created_at": iso(time.time()),
            "toolkit": f"vision-toolkit {__version__}",
        }
        return scrub(record, self._secrets)  # type: ignore[no-any-return]

    # -- resuming -------------------------------------------------------------------------------------

    def resume(self, job: Job, *, wait: bool = True) -> list[Path]:
        """Collect a job that was left behind (finished, still running, or half downloaded)."""
        if job.status == "completed":
            return job.files
        if job.status in {"failed", "canceled", "lost"}:
            raise GenerationError(f"the job is {job.status}: {job.error or 'nothing to collect'}", job_id=job.id)
        generator = get_generator(job.generator, job.kind, config=self.config, **self.generator_kwargs)  # type: ignore[arg-type]
        if not job.provider_job_id:
            job.status, job.finished_at = "lost", time.time()
            job.error = ("the process stopped before the provider gave a job id; it may not have been submitted"
                         + ("" if generator.can_resume else f" ({generator.api} keeps no job to collect)"))
            self.store.save(job)
            raise GenerationError(job.error, job_id=job.id)
        if not generator.can_resume:
            job.status, job.finished_at = "lost", time.time()
            job.error = f"{generator.api} answers synchronously: outputs not saved before the stop cannot be collected"
            self.store.save(job)
            raise GenerationError(job.error, job_id=job.id)
        remote = self._refresh(job, generator)
        if not remote.done and not wait:
            return []
        remote = self.wait(job, generator, remote)
        return self.collect(job, generator, remote)

    def cancel(self, job: Job) -> None:
        """Cancel a job at the provider and mark it canceled."""
        if not job.active:
            raise GenerationError(f"the job is already {job.status}", job_id=job.id)
        generator = get_generator(job.generator, job.kind, config=self.config, **self.generator_kwargs)  # type: ignore[arg-type]
        if job.provider_job_id and generator.can_cancel:
            generator.cancel(job.provider_job_id)
        job.status, job.finished_at, job.error = "canceled", time.time(), "canceled by the user"
        self.store.save(job)


class _Incomplete(Exception):
    pass


def _sniff(head: bytes) -> str | None:
    for offset, magic, ext in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return ext
    return None


def _url_ext(ref: str) -> str | None:
    if ref.startswith("data:"):
        return _MIME_EXT.get(ref[5:].split(";")[0].split(",")[0])
    m = re.search(r"\.([a-z0-9]{2,4})(?:$|\?)", ref.split("#")[0].lower())
    return m.group(1) if m else None


def _elide_ref(ref: str) -> str:
    if ref.startswith("data:"):
        head = ref.split(",", 1)[0]
        return f"{head},<{len(ref) - len(head) - 1} base64 chars>"
    return ref


def _elide(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: _elide_ref(v) if isinstance(v, str) and v.startswith("data:") else v for k, v in inputs.items()}
