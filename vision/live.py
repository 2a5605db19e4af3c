"""Live point-and-ask: watch a camera and ask a model each time it settles on something new.

:class:`AskGate` decides *when* (pure logic over measured frames, no threads, no model): only when
the camera has been still for ``settle`` seconds, the picture is bright and sharp enough, and
the scene differs from the last one asked about (perceptual hash distance); it sends the sharpest
still frame of that moment, keeps at most one request in flight, lets the newest good frame replace
one that is still waiting, and never starts two requests less than ``1 / rate`` seconds apart.

:class:`LiveSession` runs a :class:`~vision.camera.Camera` through the gate and asks with the
library's own :class:`~vision.chat.Conversation` (so every ask is planned, priced, budget-checked and
logged to the history as usual), adding a crop when small print needs one (:mod:`vision.roi`).

Live sources (cameras) keep streaming while a request is in flight: the newest good frame wins.
Files and folders are read at their own pace and wait for each answer, so every scene of a video
is asked about, however slow the model.

>>> from vision.camera import open_camera
>>> with open_camera("assets/book_cover.png") as cam:
...     answers = list(LiveSession(cam, "What is this?", model="local", history=False).answers())
>>> len(answers), answers[0].index
(1, 0)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .camera import Camera
from .chat import Conversation
from .config import Config, get_config
from .errors import CameraError, ConfigurationError, VisionError
from .frame import Frame
from .providers.base import Answer, BaseVisionModel, ImagePart, Message, Options, Usage
from .providers.registry import get_model
from .quality import (
    MIN_SHARPNESS,
    MOTION_THRESHOLD,
    SCENE_THRESHOLD,
    FrameInfo,
    QualityTracker,
    scene_distance,
)
from .roi import RoiMode, RoiPlan, plan_roi

log = logging.getLogger(__name__)

_EPS = 1e-6
FOCUS_GAIN = 1.1  # a frame this much sharper than the best so far means the camera is still focusing


@dataclass(frozen=True)
class GateSettings:
    """When to ask. ``rate``: at most this many requests per second (the rate cap); ``settle``:
    seconds of stillness before asking; ``motion_threshold``: the mean grey-level change between
    thumbnails under which the camera counts as still; ``scene_threshold``: dhash bits (of 64) that
    must differ from the last scene asked about; ``min_sharpness``: below this a still frame is
    blank or out of focus and not worth a request; ``focus_wait``: how much longer to wait while
    the picture is still getting sharper (autofocus), so the sharp frame is sent, not the blurred one."""

    rate: float = 1.0
    settle: float = 0.06
    focus_wait: float = 0.5
    motion_threshold: float = MOTION_THRESHOLD
    scene_threshold: int = SCENE_THRESHOLD
    min_sharpness: float = MIN_SHARPNESS

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive (requests per second)")
        if self.settle < 0 or self.focus_wait < 0:
            raise ValueError("settle and focus_wait must not be negative (seconds)")
        if not 0 <= self.scene_threshold <= 64:
            raise ValueError("scene_threshold is a number of hash bits, 0 to 64")


@dataclass(frozen=True)
class Trigger:
    """A frame the gate decided to ask about."""

    frame: Frame
    info: FrameInfo
    still_since: float  # when the scene became still (frame clock)
    decided_at: float  # timestamp of the frame on which the gate decided (frame clock)
    decided_wall: float  # time.time() when the gate decided
    scene: int  # the number of the scene (1, 2, ...)


class AskGate:
    """Decides when to ask, frame by frame. Feed it every frame with :meth:`update`; it returns a
    :class:`Trigger` when a request should start now. Call :meth:`done` when that request finished,
    and :meth:`flush` at the end of a stream."""

    def __init__(self, settings: GateSettings | None = None, *, tracker: QualityTracker | None = None) -> None:
        self.settings = settings or GateSettings()
        self.tracker = tracker or QualityTracker(motion_threshold=self.settings.motion_threshold)
        self.busy = False  # a request is in flight
        self.pending: Trigger | None = None  # decided, waiting for the request in flight or the rate cap
        self.reference: int | None = None  # dhash of the last scene decided on
        self.status = "starting"
        self.scenes = 0
        self.replaced = 0  # pending triggers replaced by a newer one before they were sent
        self._still_since: float | None = None  # when the current still run began (frame clock)
        self._previous_ts: float | None = None
        self._previous_sharpness = 0.0
        self._run_peak = 0.0  # the sharpest frame of the current still run so far
        self._last_sent: float | None = None

    def update(self, frame: Frame, *, still: bool | None = None) -> Trigger | None:
        """Measure ``frame``; returns a trigger to send now, or ``None``. ``still=True`` declares the
        frame a settled still picture of its own (a photo from a folder)."""
        info = self.tracker.update(frame, still=still)
        now = info.timestamp
        if still:  # a photo: its own still run, settled at once
            self._still_since = now
            self._consider(now, force=True)
        elif info.still:
            if self._still_since is None:
                # the previous frame was the same picture: the scene has been still since then
                self._still_since = self._previous_ts if self._previous_ts is not None else now
                self._run_peak = self._previous_sharpness
            improving = info.sharpness > FOCUS_GAIN * self._run_peak
            self._run_peak = max(self._run_peak, info.sharpness)
            self._consider(now, force=False, improving=improving)
        else:
            self._still_since = None
            self.status = "moving"
        self._previous_ts = now
        self._previous_sharpness = info.sharpness if info.usable else 0.0
        return self._dispatch(now)

    def _consider(self, now: float, *, force: bool, any_frame: bool = False, improving: bool = False) -> None:
        s = self.settings
        assert self._still_since is not None
        if not force and now - self._still_since < s.settle - _EPS:
            self.status = "settling"
            return
        if not force and improving and now - self._still_since < s.settle + s.focus_wait - _EPS:
            self.status = "focusing"
            return
        best = self.tracker.best_frame(now - self._still_since, still_only=not any_frame)
        if best is None:
            self.status = "too dark"
            return
        if best.info.sharpness < s.min_sharpness:
            self.status = "blurred or blank"
            return
        if self.reference is not None and scene_distance(best.info.dhash, self.reference) <= s.scene_threshold:
            self.status = "same scene"
            return
        self.reference = best.info.dhash
        self.scenes += 1
        if self.pending is not None:
            self.replaced += 1
        self.pending = Trigger(best.frame, best.info, self._still_since, now, time.time(), self.scenes)
        self.status = "new scene"

    def _dispatch(self, now: float, *, ignore_rate: bool = False) -> Trigger | None:
        if self.pending is None or self.busy:
            return None
        if not ignore_rate and self._last_sent is not None and now - self._last_sent < 1 / self.settings.rate - _EPS:
            return None
        trigger, self.pending = self.pending, None
        self.busy = True
        self._last_sent = now
        return trigger

    def done(self) -> None:
        """The request in flight has finished (answered or failed)."""
        self.busy = False

    def flush(self) -> Trigger | None:
        """At the end of a stream: decide on a still run that had no time to settle, and release the
        waiting trigger whatever the rate cap (there will be no newer frame to replace it)."""
        last = self.tracker.last
        if last is not None and self._still_since is None and self.tracker.count == 1:
            self._still_since = last.timestamp  # a one-frame video: never compared with anything
            self._consider(last.timestamp, force=True, any_frame=True)
        elif last is not None and self._still_since is not None and self.pending is None:
            self._consider(last.timestamp, force=True)
        return self._dispatch(self._last_sent or 0.0, ignore_rate=True)

    @property
    def still_since(self) -> float | None:
        """When the current still run began (frame clock), or ``None`` while the camera moves."""
        return self._still_since


@dataclass(frozen=True)
class KeptFrame:
    """The frame a :class:`StillKeeper` holds, with its measurements."""

    frame: Frame
    info: FrameInfo
    scene: int  # the number of the scene (1, 2, ...)
    still: bool = True  # False: no still frame yet, this is only the sharpest recent one


class StillKeeper:
    """The sharpest still frame of the scene in front of a live camera, kept for asking on demand.

    Where :class:`LiveSession` asks by itself, an interactive app lets the person ask when they
    want: feed every frame to :meth:`update` and ask about :meth:`frame_for_asking`. The decision is
    the :class:`AskGate`'s, as in ``vision watch`` (still for ``settle`` seconds, bright, sharp, a new
    scene), without its rate cap; a sharper still frame of the same scene (autofocus settling, a
    steadier hand) replaces the kept one.

    >>> keeper = StillKeeper()
    >>> card = np.full((240, 320, 3), 250, np.uint8); card[100:140, 40:280] = 20
    >>> [keeper.update(Frame.from_array(card, timestamp=t / 5)) for t in range(3)]
    [False, True, False]
    >>> keeper.kept.scene, keeper.status
    (1, 'same scene')
    """

    def __init__(self, gate: GateSettings | None = None) -> None:
        self.gate = AskGate(replace(gate or GateSettings(), rate=1000.0))
        self.kept: KeptFrame | None = None

    @property
    def status(self) -> str:
        """What the camera is doing: ``moving``, ``settling``, ``focusing``, ``new scene``, ``same
        scene``, ``too dark``, ``blurred or blank`` (``starting`` before the first frame)."""
        return self.gate.status

    def update(self, frame: Frame) -> bool:
        """Measure ``frame``; returns whether the kept frame changed."""
        trigger = self.gate.update(frame)
        if trigger is not None:
            self.gate.done()  # nothing is sent: the person asks when they want
            self.kept = KeptFrame(trigger.frame, trigger.info, trigger.scene)
            return True
        kept, since = self.kept, self.gate.still_since
        if kept is None or since is None or self.gate.status != "same scene":
            return False
        last = self.gate.tracker.last
        assert last is not None
        best = self.gate.tracker.best_frame(last.timestamp - since)
        if (best is not None and best.frame is not kept.frame and best.info.sharpness > FOCUS_GAIN * kept.info.sharpness
                and scene_distance(best.info.dhash, kept.info.dhash) <= self.gate.settings.scene_threshold):
            self.kept = KeptFrame(best.frame, best.info, kept.scene)
            return True
        return False

    def frame_for_asking(self, window: float = 2.0) -> KeptFrame | None:
        """The kept still frame; when there is none yet (the camera never stopped moving), the
        sharpest usable frame of the last ``window`` seconds, marked ``still=False``."""
        if self.kept is not None:
            return self.kept
        best = self.gate.tracker.best_frame(window, still_only=False)
        return None if best is None else KeptFrame(best.frame, best.info, 0, still=False)

    def reset(self) -> None:
        """Forget the kept frame and the stream (the camera was restarted)."""
        self.gate = AskGate(self.gate.settings)
        self.kept = None


# -- asking -------------------------------------------------------------------------------------------


class _FrameQuestion(Conversation):
    """A one-question conversation whose images are given as parts, each with its own detail (and
    not re-decoded or resized: they are frames already)."""

    def __init__(self, parts: Sequence[ImagePart], **kwargs: Any) -> None:
        super().__init__((), **kwargs)
        self._parts = tuple(parts)
        self.frames = [p.frame for p in parts]

    def messages(self, question: str) -> list[Message]:
        msgs = super().messages(question)
        if self.turns:  # pragma: no cover - a live question is asked once
            raise RuntimeError("a frame question takes no follow-ups")
        return [*msgs[:-1], replace(msgs[-1], images=self._parts)]


@dataclass
class LiveAnswer:
    """One answer (or failure) of a live session."""

    index: int  # the frame's number in the source
    time: float  # seconds since the session started, on the source's clock
    timestamp: float  # the frame's own timestamp
    sharpness: float
    scene: int
    answer: Answer | None
    error: str | None = None
    roi: RoiPlan | None = None
    still_to_sent_ms: float | None = None  # from the scene becoming still to the request leaving
    total_usage: Usage = field(default_factory=Usage)
    frame: Frame | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        return self.answer.text if self.answer else ""

    def to_dict(self) -> dict[str, Any]:
        a = self.answer
        return {
            "time": round(self.time, 3),
            "frame": self.index,
            "scene": self.scene,
            "sharpness": round(self.sharpness, 1),
            "answer": a.text if a else None,
            "error": self.error,
            "model": a.model if a else None,
            "usage": a.usage.to_dict() if a else None,
            "latency_ms": round(a.latency_ms, 1) if a else None,
            "still_to_sent_ms": None if self.still_to_sent_ms is None else round(self.still_to_sent_ms, 1),
            "crop": list(self.roi.crop) if self.roi and self.roi.crop else None,
            "roi": self.roi.mode if self.roi else None,
            "total_cost_usd": self.total_usage.cost_usd,
        }


@dataclass
class LiveSummary:
    frames: int = 0
    asks: int = 0
    failures: int = 0
    scenes: int = 0
    replaced: int = 0
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0


class LiveSession:
    """Watch ``camera`` and ask ``question`` about each new scene.

    ``model``, ``system``, ``preset``, ``options``, ``history``, ``cache`` and ``config`` are those of
    :class:`~vision.chat.Conversation`. ``gate`` tunes when to ask; ``roi`` is the crop mode for
    small print (``auto``, ``crop``, ``both``, ``off``); ``wait`` (default: for files and folders)
    reads the next frame only once the answer is in; ``max_asks`` and ``duration`` (seconds of
    source time) end the session early.

    Iterate over :meth:`answers`; after Ctrl-C, :meth:`drain` returns the answer still in flight.
    """

    def __init__(
        self,
        camera: Camera,
        question: str,
        *,
        model: str | BaseVisionModel | None = None,
        system: str | None = None,
        preset: str | None = None,
        options: Options | None = None,
        history: bool | None = None,
        cache: bool | None = None,
        gate: GateSettings | None = None,
        roi: RoiMode = "auto",
        wait: bool | None = None,
        max_asks: int | None = None,
        duration: float | None = None,
        config: Config | None = None,
    ) -> None:
        self.config = config or get_config()
        self.camera = camera
        self.model = model if isinstance(model, BaseVisionModel) else get_model(model, config=self.config)
        self.preset = self.config.preset(preset) if preset else None
        self.question = (question or "").strip() or (self.preset.prompt if self.preset else "")
        if not self.question:
            raise ValueError("watching needs a question (or a preset with a default question)")
        self.system = system
        self.options = options or Options()
        self.detail = self.options.detail or (self.preset.detail if self.preset else "auto")
        self.history = history
        self.cache = cache
        self.gate = AskGate(gate)
        self.roi_mode = roi
        self.wait = (not camera.live) if wait is None else wait
        if max_asks is not None and max_asks < 1:
            raise ValueError("max_asks must be at least 1")
        self.max_asks = max_asks
        self.duration = duration
        self.summary = LiveSummary()
        self._warm_up()
        self._results: queue.Queue[LiveAnswer | BaseException] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._start_ts: float | None = None
        self._started = time.monotonic()

    def _warm_up(self) -> None:
        """Pay the one-time costs now, on this thread (importing the client library, building the
        client, which also checks the key; the encoder's first run), not in the worker thread when the
        first scene is waiting."""
        for hook in ("load_client", "client"):
            warm = getattr(self.model, hook, None)
            if callable(warm):
                warm()
        tiny = Frame.from_array(np.full((32, 32, 3), 128, np.uint8), source="<warm-up>")
        self.model.plan([Message("user", self.question, (ImagePart(tiny, self.detail),))], self.options)

    # -- the loop -----------------------------------------------------------------------------------

    def answers(self) -> Iterator[LiveAnswer]:
        """Answers as they arrive, until the source ends, ``max_asks`` or ``duration``.

        A camera that fails for good raises its :class:`~vision.errors.CameraError`, after the answer
        in flight (already paid for) has been yielded.
        """
        stills = self.camera.stills
        try:
            for frame in self.camera:
                if self._start_ts is None:
                    self._start_ts = frame.timestamp
                self.summary.frames += 1
                trigger = self.gate.update(frame, still=True if stills else None)
                if trigger is not None:
                    self._start(trigger)
                yield from self._collect()
                if self._finished() or (self.duration is not None
                                        and frame.timestamp - self._start_ts >= self.duration):
                    break
        except CameraError:
            yield from self.drain()
            raise
        yield from self.drain()
        if not self._finished():
            trigger = self.gate.flush()
            if trigger is not None:
                self._start(trigger)
                yield from self.drain()
        self.summary.seconds = time.monotonic() - self._started

    def _finished(self) -> bool:
        return self.max_asks is not None and self.summary.asks >= self.max_asks

    @property
    def in_flight(self) -> bool:
        return self.gate.busy

    def drain(self, timeout: float | None = None) -> Iterator[LiveAnswer]:
        """Wait for the request in flight (if any) and yield what finished."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        yield from self._collect()

    def _collect(self) -> Iterator[LiveAnswer]:
        while True:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _start(self, trigger: Trigger) -> None:
        self.summary.asks += 1
        self.summary.scenes = self.gate.scenes
        self.summary.replaced = self.gate.replaced
        # always in a worker thread, even when waiting for it: Ctrl-C then interrupts the wait, not the
        # request, and drain() can still collect the answer that was paid for
        self._worker = threading.Thread(target=self._ask, args=(trigger,), name="live-ask", daemon=True)
        self._worker.start()
        if self.wait:
            self._worker.join()

    def _ask(self, trigger: Trigger) -> None:
        roi: RoiPlan | None = None
        try:
            roi = plan_roi(trigger.frame, self.question, self.model, detail=self.detail, mode=self.roi_mode)
            parts = roi.parts(trigger.frame, self.detail)
            chat = _FrameQuestion(parts, model=self.model, system=self.system, preset=self.preset,
                                  options=self.options, history=self.history, cache=self.cache, config=self.config)
            chat.plan(self.question)  # encodes the images (memoised), so what follows is the send itself
            sent_wall = time.time()
            answer = chat.ask(self.question)
            result = self._result(trigger, answer, None, roi, sent_wall)
        except (ConfigurationError, MemoryError) as exc:  # every later ask would fail the same way
            self._results.put(exc)
            self.gate.done()
            return
        except VisionError as exc:
            log.warning("ask failed: %s", exc)
            self.summary.failures += 1
            result = self._result(trigger, None, str(exc), roi, None)
        except Exception as exc:  # a bug must reach the caller, not die in the worker thread
            self._results.put(exc)
            self.gate.done()
            return
        self._results.put(result)
        self.gate.done()

    def _result(self, trigger: Trigger, answer: Answer | None, error: str | None, roi: RoiPlan | None,
                sent_wall: float | None) -> LiveAnswer:
        if answer is not None:
            self.summary.usage = self.summary.usage + answer.usage
        # still -> sent: the gate's own wait (settle, on the frame clock) plus the time to send after deciding
        to_sent = None
        if sent_wall is not None:
            to_sent = ((trigger.decided_at - trigger.still_since) + (sent_wall - trigger.decided_wall)) * 1000
        return LiveAnswer(
            index=getattr(trigger.frame, "index", trigger.info.index),
            time=trigger.info.timestamp - (self._start_ts or trigger.info.timestamp),
            timestamp=trigger.info.timestamp, sharpness=trigger.info.sharpness, scene=trigger.scene,
            answer=answer, error=error, roi=roi, still_to_sent_ms=to_sent, total_usage=self.summary.usage,
            frame=trigger.frame,
        )


def watch(source: Any, question: str, **kwargs: Any) -> Iterator[LiveAnswer]:
    """Open ``source`` (anything :class:`~vision.camera.Camera` takes) and yield an answer per new scene.

    Camera arguments (``fps``, ``size``, ``realtime``, ``timeout``) and :class:`LiveSession` arguments
    are both accepted.
    """
    camera_keys = {"fps", "size", "realtime", "loop", "timeout", "reconnect", "give_up_after"}
    cam_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in camera_keys}
    cam = Camera(source, **cam_kwargs)
    session = LiveSession(cam, question, **kwargs)  # ready (client built) before the camera streams
    with cam:
        yield from session.answers()


__all__ = ["AskGate", "GateSettings", "KeptFrame", "LiveAnswer", "LiveSession", "LiveSummary", "StillKeeper", "Trigger",
           "watch"]
