"""Imagine: a caption, headlines or a photo -> a written prompt you can edit -> pictures -> a video.

The prompt writer (:func:`vision.bridge.plan_imagine`) writes and prices everything before anything is
submitted; the person edits the written prompt, checks the estimate and generates
(:func:`vision.bridge.imagine`). Every picture lands in the output directory with its provenance
(shown when the picture is selected); a selected picture can start a video, with the job's progress
shown while it runs.

Run it alone with ``python -m apps.imagine``; it is also the third tab of ``vision app``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from vision.bridge import Generation, imagine, plan_imagine, read_provenance
from vision.bridge.generators import known_generators
from vision.bridge.jobs import Job
from vision.config import get_config
from vision.frame import Frame

from .common import TITLE, shows_errors, usd

CAPTION, HEADLINES, PHOTO = "Caption", "Headlines", "Photo"
NO_STYLE = "(none)"
MAX_COUNT = 8


@dataclass
class ImagineState:
    """One browser session: the estimate last shown, the pictures made, the one selected."""

    shown: tuple[Any, ...] | None = None  # what the estimate on the page was computed for
    video_shown: tuple[Any, ...] | None = None
    items: list[tuple[str, str]] = field(default_factory=list)  # (file, caption) of every picture made
    selected: str | None = None
    video: str | None = None


def style_choices() -> list[str]:
    return [NO_STYLE, *get_config().styles]


def _source_kwargs(kind: str, caption: str, headlines: str, photo: np.ndarray | None) -> dict[str, Any]:
    if kind == HEADLINES:
        lines = [h.strip() for h in (headlines or "").splitlines() if h.strip()]
        if not lines:
            raise ValueError("Write some headlines, one per line.")
        return {"caption": (caption or "").strip() or None, "headlines": lines}
    if kind == PHOTO:
        if photo is None:
            raise ValueError("Upload a photo to start from.")
        return {"caption": (caption or "").strip() or None, "from_image": Frame.from_array(photo, source="upload")}
    if not (caption or "").strip():
        raise ValueError("Write a caption: what should the picture show?")
    return {"caption": caption.strip()}


def _kwargs(kind: str, caption: str, headlines: str, photo: np.ndarray | None, style: str, image_model: str,
            count: float, seed: str | None) -> dict[str, Any]:
    kw = _source_kwargs(kind, caption, headlines, photo)
    kw.update(style=None if not style or style == NO_STYLE else style, image_model=(image_model or "").strip() or None,
              n=int(count or 1), seed=whole_number(seed, "The seed"))
    return kw


def _key(kw: dict[str, Any], prompt: str | None) -> tuple[Any, ...]:
    photo = kw.get("from_image")
    plain = {k: v for k, v in kw.items() if k != "from_image"}
    return (repr(sorted(plain.items())), photo.digest if isinstance(photo, Frame) else None, prompt)


def _estimate_text(plan: Any) -> str:
    lines = []
    for job in plan.jobs:
        if job.generator.kind == "image":
            what = f"{job.request.count} image(s)"
        else:
            what = f"a {job.request.seconds} s video" if job.request.seconds else "a video"
        lines.append(f"- {what} with {job.generator.name}: {usd(job.estimate_usd)}")
        lines += [f"  - note: {n}" for n in job.notes]
    total = plan.estimated_cost_usd
    out = ["\n".join(lines), f"**Estimated cost: {usd(total)}**" + (
        f" (budget {usd(plan.budget_usd)})" if plan.budget_usd is not None else "")]
    if plan.writer_cost_usd:
        out.append(f"The prompt writer already spent {usd(plan.writer_cost_usd)}.")
    return "\n\n".join(out)


def whole_number(value: str | float | None, what: str) -> int | None:
    """A seed or a number of seconds typed in a box: blank is None."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{what} must be a whole number (or blank), not {text!r}") from None


def _progress(progress: Any) -> Any:
    def update(job: Job) -> None:
        done = job.progress if job.progress is not None else (1.0 if job.status == "succeeded" else 0.0)
        progress(done, desc=f"{job.kind} job {job.id[:8]} with {job.generator}: {job.status}")

    return update


def _caption(g: Generation) -> str:
    seed = g.params.get("seed")
    return f"{g.model.split('/')[-1]}" + (f" · seed {seed}" if seed is not None else "") + f" · job {g.job_id[:8]}"


# -- handlers ---------------------------------------------------------------------------------------------


def on_source_kind(kind: str) -> tuple[Any, Any, Any]:
    """Show the inputs of the chosen source."""
    label = {CAPTION: "Caption", HEADLINES: "Theme of the headlines (optional)",
             PHOTO: "What to keep in mind about the photo (optional)"}[kind]
    return gr.Textbox(label=label), gr.Textbox(visible=kind == HEADLINES), gr.Image(visible=kind == PHOTO)


@shows_errors
def write_prompt(kind: str, caption: str, headlines: str, photo: np.ndarray | None, style: str, image_model: str,
                 count: float, seed: str | None, state: ImagineState) -> tuple[str, str]:
    """Write the prompt and price the jobs, submitting nothing; returns (prompt, estimate)."""
    kw = _kwargs(kind, caption, headlines, photo, style, image_model, count, seed)
    plan = plan_imagine(**kw)
    assert plan.image_prompt is not None
    state.shown = _key(kw, plan.image_prompt.prompt)
    written = plan.image_prompt
    style_note = f", style {written.style}" if written.style else ""
    how = (f"Written by {written.writer} ({written.prompt_version}{style_note}); "
           f"{len(written.prompt)}/{written.max_chars} characters.")
    return written.prompt, f"{how}\n\n{_estimate_text(plan)}"


@shows_errors
def generate(kind: str, caption: str, headlines: str, photo: np.ndarray | None, style: str, image_model: str,
             count: float, seed: str | None, prompt: str, state: ImagineState,
             progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """Generate with the (edited) prompt; returns (gallery, estimate or status, provenance)."""
    if not (prompt or "").strip():
        raise ValueError("Write the prompt first (Write prompt), check it and the estimate, then Generate.")
    kw = _kwargs(kind, caption, headlines, photo, style, image_model, count, seed)
    plan = plan_imagine(prompt=prompt, **kw)
    key = _key(kw, prompt.strip())
    if key != state.shown:  # the person has not seen this estimate yet: show it, submit nothing
        state.shown = key
        gr.Warning("The settings or the prompt changed: check the new estimate, then press Generate again.")
        return gr.skip(), _estimate_text(plan), gr.skip()
    generations = imagine(prompt=prompt, on_update=_progress(progress), **kw)
    made = [(str(f), _caption(g)) for g in generations if g.kind == "image" for f in g.files]
    state.items = made + state.items
    state.shown = None  # a second press generates again only after the estimate is shown again
    first = made[0][0] if made else None
    spent = sum(g.estimated_cost_usd or 0 for g in generations)
    status = (f"Made {len(made)} picture(s) in {Path(first).parent if first else 'the output directory'} "
              f"(estimated {usd(spent)}). Select one to see its provenance or to start a video from it.")
    return state.items, status, read_provenance(first) if first else None


@shows_errors
def select_image(evt: gr.SelectData, video_model: str, seconds: str | None, state: ImagineState
                 ) -> tuple[Any, str, str]:
    """A picture was selected: its provenance, and the video prompt and estimate for starting from it."""
    if evt.index is None or not 0 <= int(evt.index) < len(state.items):
        return gr.skip(), gr.skip(), gr.skip()
    path = state.items[int(evt.index)][0]
    state.selected = path
    record = read_provenance(path)
    plan = plan_imagine(**_video_kwargs(record, path, video_model, seconds))
    assert plan.video_prompt is not None
    state.video_shown = (path, video_model, seconds, plan.video_prompt.prompt)
    return record, plan.video_prompt.prompt, _estimate_text(plan)


def _video_kwargs(record: dict[str, Any], path: str, video_model: str, seconds: str | None) -> dict[str, Any]:
    source = record.get("source") or {}
    kw: dict[str, Any] = {"video_from": path, "video_model": (video_model or "").strip() or None,
                          "seconds": whole_number(seconds, "The number of seconds")}
    if source.get("kind") == "headlines" and source.get("headlines"):
        kw.update(headlines=source["headlines"], caption=source.get("caption"))
    else:
        kw["caption"] = source.get("caption") or source.get("description") or record.get("prompt") or "a scene"
    return kw


@shows_errors
def make_video(video_prompt: str, video_model: str, seconds: str | None, state: ImagineState,
               progress: gr.Progress = gr.Progress()) -> tuple[Any, str, Any]:
    """Animate the selected picture; returns (video, status, provenance)."""
    if state.selected is None:
        raise ValueError("Select a picture in the gallery first.")
    kw = _video_kwargs(read_provenance(state.selected), state.selected, video_model, seconds)
    key = (state.selected, video_model, seconds, (video_prompt or "").strip())
    if key != state.video_shown:
        plan = plan_imagine(video_prompt=video_prompt, **kw)
        state.video_shown = key
        gr.Warning("The video settings or prompt changed: check the new estimate, then press Make video again.")
        return gr.skip(), _estimate_text(plan), gr.skip()
    generations = imagine(video_prompt=video_prompt, on_update=_progress(progress), **kw)
    video = next((g for g in generations if g.kind == "video"), None)
    if video is None or not video.files:
        raise ValueError("The video job finished without a video file.")
    state.video = str(video.files[0])
    state.video_shown = None
    return state.video, f"Video made by {video.model}: {state.video}", read_provenance(state.video)


# -- the page ---------------------------------------------------------------------------------------------


def render() -> None:
    """Build the tab's components and events inside the current ``gr.Blocks``."""
    state = gr.State(lambda: ImagineState())  # a fresh one per browser session
    settings = get_config().settings
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            kind = gr.Radio([CAPTION, HEADLINES, PHOTO], value=CAPTION, label="Start from", elem_id="im-kind")
            caption = gr.Textbox(label="Caption", placeholder="a lighthouse at dawn", elem_id="im-caption")
            gr.Examples([["a lighthouse at dawn"], ["a red kite over a beach"], ["a market stall of oranges"]],
                        inputs=caption, label="Or try")
            headlines = gr.Textbox(label="Headlines, one per line", lines=5, visible=False, elem_id="im-headlines")
            photo = gr.Image(label="Photo (described by the local engine, or the writer model)", type="numpy",
                             sources=["upload", "clipboard"], visible=False, elem_id="im-photo")
            with gr.Row():
                style = gr.Dropdown(style_choices(), value=NO_STYLE, label="Style", allow_custom_value=True,
                                    info="A preset, or your own words.")
                image_model = gr.Dropdown(known_generators("image"), value=settings.image_model,
                                          label="Image generator", allow_custom_value=True)
            with gr.Row():
                count = gr.Slider(1, MAX_COUNT, value=1, step=1, label="Pictures")
                seed = gr.Textbox(label="Seed (blank: random)", placeholder="random", elem_id="im-seed")
            write_btn = gr.Button("Write prompt", elem_id="im-write")
            prompt = gr.Textbox(label="Written prompt (edit it before generating)", lines=4, elem_id="im-prompt")
            estimate = gr.Markdown("Write the prompt to see it and what it would cost; nothing is sent to a "
                                   "generator before **Generate**.", elem_id="im-estimate")
            generate_btn = gr.Button("Generate", variant="primary", elem_id="im-generate")
        with gr.Column(scale=1):
            gallery = gr.Gallery(label="Pictures (select one for its provenance or a video)", columns=2,
                                 height=420, object_fit="contain", elem_id="im-gallery")
            with gr.Accordion("Video from the selected picture", open=True):
                with gr.Row():
                    video_model = gr.Dropdown(known_generators("video"), value=settings.video_model,
                                              label="Video generator", allow_custom_value=True)
                    seconds = gr.Textbox(label="Seconds (blank: the model's default)", placeholder="default",
                                         elem_id="im-seconds")
                video_prompt = gr.Textbox(label="Video prompt (edit it before making the video)", lines=3,
                                          elem_id="im-video-prompt")
                video_estimate = gr.Markdown("Select a picture to see the video prompt and its cost.",
                                             elem_id="im-video-estimate")
                video_btn = gr.Button("Make video", elem_id="im-video")
                video = gr.Video(label="Video", elem_id="im-video-out")
            with gr.Accordion("Provenance of the selected file", open=True):
                provenance = gr.JSON(label="Provenance", elem_id="im-provenance")

    source_inputs = [kind, caption, headlines, photo, style, image_model, count, seed]
    kind.change(on_source_kind, kind, [caption, headlines, photo])
    write_btn.click(write_prompt, [*source_inputs, state], [prompt, estimate])
    generate_btn.click(generate, [*source_inputs, prompt, state], [gallery, estimate, provenance])
    gallery.select(select_image, [video_model, seconds, state], [provenance, video_prompt, video_estimate])
    video_btn.click(make_video, [video_prompt, video_model, seconds, state], [video, video_estimate, provenance])


with gr.Blocks(title=f"Imagine · {TITLE}", analytics_enabled=False, delete_cache=(86400, 86400)) as demo:
    gr.Markdown("## Imagine")
    render()


if __name__ == "__main__":
    from .launch import launch

    launch(demo)
