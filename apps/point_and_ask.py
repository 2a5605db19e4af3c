"""Point & Ask: point the webcam (or a photo) at something and ask about it.

The browser streams webcam frames about five times a second; the server measures each with the same
quality code as ``vision watch`` (:class:`vision.live.StillKeeper`) and shows the sharpest still frame
of the scene. The first question pins that frame; follow-ups continue the conversation about it
(:class:`vision.chat.Conversation`, or :class:`vision.council.Council` when the council is picked),
and "New chat" lets the camera choose again. The cost is estimated before asking (the request's
``plan()``) and measured after. The webcam is not mirrored: what you see is what the model gets, so
printed text reads the right way round.

Run it alone with ``python -m apps.point_and_ask``; it is also the first tab of ``vision app``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np

from vision.chat import Conversation
from vision.config import get_config
from vision.council import Council, default_members
from vision.errors import VisionError
from vision.frame import Frame
from vision.live import StillKeeper
from vision.providers.base import StreamingAnswer

from .common import COUNCIL, TITLE, connect_hint, log, model_dropdown, page_message, samples, shows_errors, usd

STREAM_EVERY = 0.2  # seconds between webcam frames sent to the server
NO_PRESET = "(none)"
CAMERA, PHOTO = "camera", "photo"


@dataclass
class PointState:
    """One browser session: the camera's keeper, the photo, and the conversation about the pinned picture."""

    keeper: StillKeeper = field(default_factory=StillKeeper)
    source: str = CAMERA  # where a new chat takes its picture from: the camera or the photo
    photo: Frame | None = None
    pinned: Frame | None = None  # the picture the conversation is about
    chat: Conversation | Council | None = None
    chat_key: tuple[str, str] | None = None  # the (model, preset) the conversation was started with
    shown: str | None = None  # digest of the frame the page shows
    status: str = ""  # the camera status line the page shows
    # the last camera estimate and what it depends on (frame size, question, model, preset): a new still
    # frame of the same size costs the same, so it is not planned (resized, encoded) again
    estimate_for: tuple[Any, ...] | None = None
    estimate_text: str = ""

    def live_frame(self) -> Frame | None:
        """The picture a new chat would use now."""
        if self.source == PHOTO:
            return self.photo
        kept = self.keeper.frame_for_asking()
        return kept.frame if kept else None

    def picture(self) -> Frame | None:
        """The picture the next question is about: the pinned one during a chat, else the live one."""
        return self.pinned if self.pinned is not None else self.live_frame()


def preset_choices() -> list[str]:
    return [NO_PRESET, *(name for name in get_config().presets if not name.startswith("explain-"))]


def _preset(value: str | None) -> str | None:
    return None if not value or value == NO_PRESET else value


def _question(question: str | None, preset: str | None) -> str:
    q = (question or "").strip()
    if q:
        return q
    if preset:
        return get_config().preset(preset).prompt
    raise ValueError("Type a question, or pick a preset (it brings its own question).")


def _camera_status(state: PointState) -> str:
    keeper = state.keeper
    if state.pinned is not None:
        return "**Pinned**: questions are about this picture. *New chat* lets the camera choose again."
    if state.source == PHOTO:
        return "Asking about the uploaded photo." if state.photo is not None else "Upload a photo to ask about it."
    kept = keeper.kept
    if kept is None:
        hints = {"starting": "Start the camera and point it at something.",
                 "moving": "Hold the camera still...", "too dark": "Too dark: more light, please.",
                 "blurred or blank": "Blurred or blank: hold still, or move closer."}
        return hints.get(keeper.status, f"Camera: {keeper.status}...")
    return (f"Sharpest still frame of scene {kept.scene} (sharpness {kept.info.sharpness:.0f}); "
            f"camera: {keeper.status}.")


def _new_chat(picture: Frame, model: str, preset: str | None) -> Conversation | Council:
    if model == COUNCIL:
        members = default_members()
        if not members:
            raise ValueError("The council needs at least two connected models: connect a model first.")
        return Council(picture, members, system=get_config().preset(preset).system if preset else None)
    return Conversation(picture, model=model, preset=preset)


def _plan_text(state: PointState, question: str, model: str, preset: str | None) -> str:
    picture = state.picture()
    if picture is None:
        return "Start the camera or upload a photo; the estimate appears here."
    chat = state.chat if state.chat is not None and state.chat_key == (model, preset or "") else None
    chat = chat or _new_chat(picture, model, preset)
    q = (question or "").strip() or (get_config().preset(preset).prompt if preset else "What is this?")
    if isinstance(chat, Council):
        estimate = chat.plan(q)
        return (f"Before asking: at most **{usd(estimate.max_cost_usd)}** for {len(estimate.calls)} requests "
                f"to the council ({', '.join(m.name for m in chat.members)}).")
    plan = chat.plan(q)
    tokens = (f" ({plan.image_tokens} image + {plan.text_tokens} text tokens in, at most "
              f"{plan.max_output_tokens} out)" if plan.input_tokens else "")
    return f"Before asking: at most **{usd(plan.max_cost_usd)}** with {chat.model.name}{tokens}."


def estimate(question: str, model: str, preset: str, state: PointState) -> str:
    """The cost line shown before asking (never raises: a problem is said in the line itself)."""
    try:
        return _plan_text(state, question, model, _preset(preset))
    except Exception as exc:  # an unknown model typed, a missing key, no question yet...
        if not isinstance(exc, (VisionError, ValueError)):
            log.warning("cannot estimate", exc_info=exc)
        return f"Cannot estimate yet: {page_message(exc)}"


# -- handlers ---------------------------------------------------------------------------------------------


def on_camera_frame(image: np.ndarray | None, question: str, model: str, preset: str, state: PointState
                    ) -> tuple[Any, Any, Any]:
    """A webcam frame arrived: measure it; show the new sharpest still frame (and its cost estimate) when it
    changed. Returns (picture, status, cost line), each skipped when unchanged."""
    if image is None:
        return gr.skip(), gr.skip(), gr.skip()
    changed = state.keeper.update(Frame.from_array(image, source="webcam"))
    picture = None
    if changed and state.pinned is None and state.source == CAMERA:
        kept = state.keeper.kept
        assert kept is not None
        if kept.frame.digest != state.shown:
            state.shown = kept.frame.digest
            picture = kept.frame.pixels
    status = _camera_status(state)
    status_out: Any = gr.skip()
    if status != state.status:
        state.status = status_out = status
    if picture is None:
        return gr.skip(), status_out, gr.skip()
    depends_on = (picture.shape[:2], question, model, preset)
    if depends_on != state.estimate_for:
        text = estimate(question, model, preset, state)
        state.estimate_for, state.estimate_text = (depends_on if text.startswith("Before asking") else None), text
    return picture, status_out, state.estimate_text


def _show(state: PointState) -> tuple[Any, str]:
    picture = state.picture()
    state.shown = picture.digest if picture is not None else None
    state.status = _camera_status(state)
    return (picture.pixels if picture is not None else None), state.status


@shows_errors
def on_photo(image: np.ndarray | None, state: PointState) -> tuple[Any, str, list[dict[str, str]]]:
    """A photo was uploaded (or cleared): a new chat about it."""
    state.photo = Frame.from_array(image, source="upload") if image is not None else None
    state.source = PHOTO
    state.chat = state.pinned = state.chat_key = None
    picture, status = _show(state)
    return picture, status, []


def on_source(evt: gr.SelectData, state: PointState) -> tuple[Any, str]:
    """The Camera or Photo tab was chosen: a new chat takes its picture from there."""
    state.source = PHOTO if evt.index == 1 else CAMERA
    return _show(state)


def new_chat(state: PointState) -> tuple[Any, str, list[dict[str, str]], str]:
    """Forget the conversation and the pinned picture; the camera (or photo) chooses again."""
    state.chat = state.pinned = state.chat_key = None
    picture, status = _show(state)
    return picture, status, [], ""


def on_model_change(model: str, preset: str, state: PointState) -> tuple[list[dict[str, str]], Any]:
    """Another model or preset: the conversation starts again, about the same pinned picture."""
    if state.chat is None:
        return gr.skip(), gr.skip()
    state.chat = state.chat_key = None
    gr.Info(f"New chat with {model} about the same picture.")
    return [], gr.skip()


@shows_errors
def ask(question: str, model: str, preset: str, history: list[dict[str, str]] | None,
        state: PointState) -> Iterator[tuple[Any, ...]]:
    """Ask (or follow up) and stream the answer into the chat; yields (chat, question box, cost line, picture,
    status)."""
    preset_name = _preset(preset)
    q = _question(question, preset_name)
    model = (model or "").strip() or get_config().settings.default_model
    history = list(history or [])
    key = (model, preset_name or "")
    if state.chat is None or state.chat_key != key:
        picture = state.picture()
        if picture is None:
            raise ValueError("No picture yet: start the camera and hold it still on something, or upload a photo.")
        state.chat = _new_chat(picture, model, preset_name)
        state.chat_key, state.pinned = key, picture
        history = []  # a new conversation
    chat = state.chat
    shown_picture, status = _show(state)
    history += [{"role": "user", "content": q}, {"role": "assistant", "content": ""}]
    before = _plan_text(state, q, model, preset_name)
    yield list(history), "", before, shown_picture, status
    try:
        if isinstance(chat, Council):
            result = chat.ask(q)
            history[-1] = {"role": "assistant", "content": _council_text(result)}
            measured = (f"Measured: **{usd(result.usage.cost_usd)}** for the council round "
                        f"(estimated at most {usd(result.estimated_cost_usd)}); {result.wall_s:.1f} s.")
            yield list(history), "", measured, gr.skip(), gr.skip()
            return
        stream: StreamingAnswer = chat.stream(q)
        text = ""
        for delta in stream:
            text += delta
            history[-1] = {"role": "assistant", "content": text}
            yield list(history), "", before, gr.skip(), gr.skip()
    except Exception:
        said = chat.turns if isinstance(chat, Conversation) else chat.rounds
        if not said and state.chat is chat:
            state.chat = state.chat_key = state.pinned = None  # nothing was said: the camera chooses again
        picture, status = _show(state)
        yield history[:-2], q, before, picture, status
        raise
    answer = stream.answer
    assert answer is not None
    u = answer.usage
    tokens = f", {u.input_tokens} in / {u.output_tokens} out tokens" if u.input_tokens or u.output_tokens else ""
    plan_cost = answer.plan.max_cost_usd if answer.plan else None
    measured = (f"Measured: **{usd(u.cost_usd)}** with {answer.model}{tokens}, {answer.latency_ms / 1000:.1f} s "
                f"(estimated at most {usd(plan_cost)}); this chat so far: {usd(chat.usage.cost_usd)}.")
    yield list(history), "", measured, gr.skip(), gr.skip()


def _council_text(result: Any) -> str:
    lines = [result.text, ""]
    if result.standings:
        lines.append("Ranking: " + ", ".join(f"{s.place}. {s.member}" for s in result.standings if s.place))
    for call in result.failed:
        lines.append(f"{call.member} did not answer: {call.error or call.status}")
    return "\n".join(lines).strip()


# -- the page ---------------------------------------------------------------------------------------------


def render() -> None:
    """Build the tab's components and events inside the current ``gr.Blocks``."""
    state = gr.State(lambda: PointState())  # a fresh one per browser session
    connect_hint()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            with gr.Tabs():
                with gr.Tab("Camera", id=CAMERA) as camera_tab:
                    camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera", height=360,
                                      webcam_options=gr.WebcamOptions(mirror=False), elem_id="pa-camera")
                with gr.Tab("Photo", id=PHOTO) as photo_tab:
                    photo = gr.Image(sources=["upload", "clipboard"], type="numpy", label="Photo", height=360,
                                     elem_id="pa-photo")
                    if examples := samples("book_photo.jpg", "book_cover.png", "nutrition_label.png"):
                        gr.Examples(examples, inputs=photo, label="Or try a sample")
            still = gr.Image(label="What the model sees", interactive=False, elem_id="pa-still", height=320)
            status = gr.Markdown("Start the camera and point it at something, or upload a photo.",
                                 elem_id="pa-status")
        with gr.Column(scale=1):
            with gr.Row():
                model = model_dropdown(elem_id="pa-model")
                preset = gr.Dropdown(preset_choices(), value=NO_PRESET, label="Preset",
                                     info="Instructions and a default question.", elem_id="pa-preset")
            chatbot = gr.Chatbot(label="Conversation", height=380, elem_id="pa-chat", buttons=["copy"])
            question = gr.Textbox(label="Question", placeholder="What is this?", lines=1, elem_id="pa-question")
            with gr.Row():
                ask_btn = gr.Button("Ask", variant="primary", elem_id="pa-ask")
                new_btn = gr.Button("New chat", elem_id="pa-new")
            cost = gr.Markdown("", elem_classes=["vt-cost"], elem_id="pa-cost")

    camera.stream(on_camera_frame, [camera, question, model, preset, state], [still, status, cost],
                  stream_every=STREAM_EVERY,
                  concurrency_limit=None, show_progress="hidden", queue=True)
    photo.change(on_photo, [photo, state], [still, status, chatbot]).then(
        estimate, [question, model, preset, state], cost, show_progress="hidden")
    for tab in (camera_tab, photo_tab):
        tab.select(on_source, state, [still, status]).then(
            estimate, [question, model, preset, state], cost, show_progress="hidden")
    for box in (question, model, preset):
        box.change(estimate, [question, model, preset, state], cost, trigger_mode="always_last",
                   show_progress="hidden")
    for box in (model, preset):
        box.change(on_model_change, [model, preset, state], [chatbot, cost])
    gr.on([ask_btn.click, question.submit], ask, [question, model, preset, chatbot, state],
          [chatbot, question, cost, still, status], show_progress_on=chatbot)
    new_btn.click(new_chat, state, [still, status, chatbot, cost])


with gr.Blocks(title=f"Point & Ask · {TITLE}", analytics_enabled=False, delete_cache=(86400, 86400)) as demo:
    gr.Markdown("## Point & Ask")
    render()


if __name__ == "__main__":
    from .launch import launch

    launch(demo)
