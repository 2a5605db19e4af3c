"""``imagine``: caption, headlines or photo -> written prompt -> image job(s) -> optional video job.

:func:`plan_imagine` writes the prompts, builds every request and prices it, sending nothing to a
generator (``--dry-run`` prints it). :func:`imagine` checks the budget against that estimate, then
runs each job through :class:`~vision.bridge.jobs.JobRunner` (recorded before it is submitted) and
returns one :class:`Generation` per job. The video starts from the first generated image (or the
user's ``video_from`` photo) when its model takes a start image, else from the prompt alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..config import Config, get_config
from ..errors import BudgetExceededError, ConfigurationError
from .generators import GenerationRequest, Generator, StartImage, get_generator
from .jobs import Job, JobRunner, JobStore
from .writer import PromptWriter, Source, WrittenPrompt, caption_source, headlines_source, image_source

log = logging.getLogger(__name__)

GENERATED_IMAGE = Path("<the generated image>")


@dataclass
class Generation:
    """What one job made: its files and how."""

    kind: Literal["image", "video"]
    files: list[Path]
    prompt: str
    source_caption: str
    model: str
    job_id: str
    params: dict[str, Any]
    created_at: float
    duration_ms: float | None
    estimated_cost_usd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "files": [str(f) for f in self.files], "prompt": self.prompt,
                "source_caption": self.source_caption, "model": self.model, "job_id": self.job_id,
                "params": self.params, "created_at": self.created_at, "duration_ms": self.duration_ms,
                "estimated_cost_usd": self.estimated_cost_usd}


@dataclass
class PlannedJob:
    """One job as it would be submitted."""

    generator: Generator
    request: GenerationRequest
    written: WrittenPrompt
    inputs: dict[str, Any]
    estimate_usd: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.generator.kind, "generator": self.generator.name, "api": self.generator.api,
                "inputs": self.inputs, "estimated_cost_usd": self.estimate_usd, "notes": self.notes}


@dataclass
class ImaginePlan:
    """The written prompts, the jobs and their estimated cost; nothing submitted yet."""

    source: Source
    image_prompt: WrittenPrompt | None
    video_prompt: WrittenPrompt | None
    jobs: list[PlannedJob]
    writer_cost_usd: float | None
    budget_usd: float | None

    @property
    def estimated_cost_usd(self) -> float | None:
        costs = [j.estimate_usd for j in self.jobs]
        if any(c is None for c in costs):
            return None
        return sum(c for c in costs if c is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.to_dict(),
            "image_prompt": self.image_prompt.to_dict() if self.image_prompt else None,
            "video_prompt": self.video_prompt.to_dict() if self.video_prompt else None,
            "jobs": [j.to_dict() for j in self.jobs],
            "estimated_cost_usd": self.estimated_cost_usd,
            "writer_cost_usd": self.writer_cost_usd,
            "budget_usd": self.budget_usd,
        }

    def check_budget(self) -> None:
        """Refuse (before anything is submitted) a plan whose estimate is over the budget."""
        if self.budget_usd is None:
            return
        total = self.estimated_cost_usd
        if total is None:
            unknown = ", ".join(j.generator.name for j in self.jobs if j.estimate_usd is None)
            raise ConfigurationError(f"a budget of ${self.budget_usd:.4f} is set but the price of {unknown} is "
                                     "unknown: add it to [[generators]] in your config file, or unset the budget")
        if total > self.budget_usd:
            raise BudgetExceededError(total, self.budget_usd)


def build_source(caption: str | None = None, *, headlines: Sequence[str] | str | Path | None = None,
                 from_image: Any = None, describe_model: str | None = None, seed: int | None = None,
                 config: Config | None = None) -> Source:
    """The source of the prompt: headlines (with the caption as their theme), a photo, or a caption."""
    config = config or get_config()
    if headlines is not None and from_image is not None:
        raise ValueError("give headlines or a photo to start from, not both")
    if headlines is not None:
        return headlines_source(headlines, caption=caption, config=config)
    if from_image is not None:
        source = image_source(from_image, model=describe_model, seed=seed, config=config)
        if caption and caption.strip():
            source.caption = caption.strip()
            source.description = f"{caption.strip()}: {source.description}"
        return source
    return caption_source(caption or "")


def plan_imagine(
    caption: str | None = None,
    *,
    headlines: Sequence[str] | str | Path | None = None,
    from_image: Any = None,
    style: str | None = None,
    image_model: str | None = None,
    n: int = 1,
    seed: int | None = None,
    raw: bool = False,
    video: bool = False,
    video_model: str | None = None,
    seconds: int | None = None,
    video_from: str | Path | None = None,
    aspect_ratio: str | None = None,
    size: str | None = None,
    output_format: str | None = None,
    writer_model: str | None = None,
    budget_usd: float | None = None,
    prompt: str | None = None,
    video_prompt: str | None = None,
    config: Config | None = None,
    generator_kwargs: dict[str, Any] | None = None,
) -> ImaginePlan:
    """Write the prompts and build (and price) every job, submitting nothing.

    ``prompt`` and ``video_prompt`` replace the written prompts with the person's corrected ones (the
    source and the writer are still recorded, and the prompt is marked edited)."""
    config = config or get_config()
    gkw = generator_kwargs or {}
    if not 1 <= n <= 16:
        raise ValueError("--n must be between 1 and 16")
    if video_from is not None:
        video = True
        if not Path(video_from).expanduser().is_file():
            raise ValueError(f"{video_from}: no such image to start the video from")
    writer = PromptWriter(writer_model, seed=seed, config=config)
    source = build_source(caption, headlines=headlines, from_image=from_image, describe_model=writer.describer,
                          seed=seed, config=config)
    jobs: list[PlannedJob] = []
    written_image: WrittenPrompt | None = None
    written_video: WrittenPrompt | None = None
    writer_cost: float | None = 0.0
    if video_from is None:
        gen = get_generator(image_model, "image", config=config, **gkw)
        written_image = writer.write(source, gen.facts, style=style, raw=raw, kind="image")
        if prompt is not None:
            written_image = written_image.edited_to(prompt)
        writer_cost = _add(writer_cost, written_image.cost_usd)
        base = GenerationRequest(prompt=written_image.prompt, negative_prompt=written_image.negative_prompt,
                                 seed=seed, aspect_ratio=aspect_ratio, size=size, output_format=output_format,
                                 disable_rewriter=written_image.expanded)
        per_job = gen.facts.max_count if gen.facts.inputs.count else 1
        left, k = n, 0
        while left > 0:
            count = min(per_job, left)
            req = replace(base, count=count, seed=None if seed is None else seed + k)
            jobs.append(_planned(gen, req, written_image))
            left -= count
            k += 1
    if video:
        vgen = get_generator(video_model, "video", config=config, **gkw)
        written_video = writer.write(source, vgen.facts, style=style, raw=raw, kind="video")
        if video_prompt is not None:
            written_video = written_video.edited_to(video_prompt)
        writer_cost = _add(writer_cost, written_video.cost_usd)
        start = None
        if vgen.facts.inputs.image:
            start = StartImage(Path(video_from).expanduser().resolve()) if video_from else StartImage(GENERATED_IMAGE)
        elif video_from:
            raise ValueError(f"{vgen.name} makes videos from text only: it cannot start from {video_from}")
        vreq = GenerationRequest(prompt=written_video.prompt, negative_prompt=written_video.negative_prompt, seed=seed,
                                 seconds=seconds, image=start, aspect_ratio=aspect_ratio if start is None else None,
                                 disable_rewriter=written_video.expanded)
        jobs.append(_planned(vgen, vreq, written_video))
    budget = budget_usd if budget_usd is not None else config.settings.budget_usd
    return ImaginePlan(source, written_image, written_video, jobs, writer_cost, budget)


def _planned(gen: Generator, req: GenerationRequest, written: WrittenPrompt) -> PlannedJob:
    inputs = gen.build_input(req)
    return PlannedJob(gen, req, written, inputs, gen.estimate_usd(req), list(gen.notes))


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def imagine(
    caption: str | None = None,
    *,
    out_dir: str | Path | None = None,
    timeout: float | None = None,
    on_update: Callable[[Job], None] | None = None,
    confirm_cancel: Callable[[Job], bool] | None = None,
    on_plan: Callable[[ImaginePlan], None] | None = None,
    config: Config | None = None,
    generator_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> list[Generation]:
    """Write a prompt, generate the image(s) and, with ``video=True``, a video from the first image.

    Takes the arguments of :func:`plan_imagine`. Every output lands in ``out_dir`` (default:
    ``settings.output_dir``) with its provenance sidecar and a line in ``index.jsonl``.
    """
    config = config or get_config()
    plan = plan_imagine(caption, config=config, generator_kwargs=generator_kwargs, **kwargs)
    plan.check_budget()
    if on_plan:
        on_plan(plan)
    out = Path(out_dir or config.settings.output_dir).expanduser().resolve()
    runner = JobRunner(JobStore(config=config), config=config, timeout=timeout, on_update=on_update,
                       confirm_cancel=confirm_cancel, generator_kwargs=generator_kwargs)
    results: list[Generation] = []
    first_image: tuple[Job, Path] | None = None
    for planned in plan.jobs:
        req = planned.request
        parent = None
        if req.image is not None and req.image.path == GENERATED_IMAGE:
            if first_image is None:
                raise ConfigurationError("the video needs a start image but no image was generated")
            job0, file0 = first_image
            ref = job0.outputs[0].get("ref") if job0.outputs else None
            req = replace(req, image=StartImage(file0, ref if ref and ref.startswith("https://") else None))
            parent = {"file": file0.name, "job_id": job0.id, "sha256": job0.outputs[0]["sha256"]}
        elif req.image is not None:
            parent = {"file": str(req.image.path), "user_image": True}
        written = planned.written
        rewriter = planned.generator.facts.inputs.rewriter
        writer = {k: v for k, v in written.to_dict().items() if k not in {"source", "prompt", "negative_prompt"}}
        writer["generator_rewriter"] = (
            "none" if not rewriter else f"off ({rewriter}={planned.generator.facts.rewriter_off!r})"
            if req.disable_rewriter else f"model default ({rewriter} not sent)")
        context = {
            "source": plan.source.to_dict(),
            "writer": writer,
            "prompt": written.prompt,
            "negative_prompt": written.negative_prompt,
            "parent": parent,
        }
        job = runner.create(planned.generator, req, out_dir=out, context=context,
                            label=plan.source.caption or plan.source.text[:60])
        files = runner.run(job, planned.generator, req)
        if planned.generator.kind == "image" and first_image is None and files:
            first_image = (job, files[0])
        duration = (job.finished_at - job.submitted_at) * 1000 if job.finished_at and job.submitted_at else None
        results.append(Generation(planned.generator.kind, files, written.prompt, plan.source.text,
                                  planned.generator.name, job.id, {**job.request, "inputs": job.inputs},
                                  job.created_at, duration, job.estimated_cost_usd))
    return results
