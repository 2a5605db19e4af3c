"""``local``: the embedded default. No key, no network, and not a language model.

It answers from what this machine can see for itself: OCR text in reading order with the most
prominent line as a likely title, barcodes and QR codes (OpenCV), faces (Haar cascade), dominant
colours, sharpness and exposure. It says plainly what it is and how to connect a real model.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from ..encode import RequestPlan
from ..errors import MissingExtraError, OcrError
from ..frame import Frame
from ..quality import measure
from .base import Answer, BaseVisionModel, Message, Options, Usage

log = logging.getLogger(__name__)

CONNECT_HINT = (
    "To get answers in words, connect a vision model: `export OPENAI_API_KEY=...` and add "
    "`--model openai/gpt-4.1-mini`, or run Ollama (`ollama pull llava`) and add `--model ollama/llava`. "
    "`vision models` lists every provider."
)
OCR_SIDE = 2560

_COLOURS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "light grey": (200, 200, 200),
    "dark grey": (64, 64, 64), "red": (200, 30, 30), "dark red": (120, 10, 20), "orange": (240, 140, 20),
    "yellow": (240, 220, 40), "olive": (128, 128, 0), "green": (40, 160, 60), "dark green": (10, 80, 30),
    "teal": (0, 128, 128), "cyan": (40, 200, 220), "light blue": (140, 190, 240), "blue": (30, 80, 200),
    "navy": (15, 25, 90), "purple": (110, 40, 150), "pink": (240, 140, 180), "magenta": (200, 30, 150),
    "brown": (120, 70, 30), "beige": (225, 205, 165), "cream": (250, 240, 215),
}


@dataclass
class Findings:
    """What the local engine found in one image."""

    source: str
    size: tuple[int, int]
    text_lines: list[str] = field(default_factory=list)
    ocr_confidence: float = 0.0
    ocr_engine: str | None = None
    ocr_error: str | None = None
    title: str | None = None
    byline: str | None = None
    codes: list[dict[str, str]] = field(default_factory=list)
    faces: int = 0
    colours: list[tuple[str, float]] = field(default_factory=list)
    sharpness: float = 0.0
    exposure: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "size": list(self.size), "title": self.title, "byline": self.byline,
            "text_lines": self.text_lines, "ocr_engine": self.ocr_engine,
            "ocr_confidence": round(self.ocr_confidence, 3), "ocr_error": self.ocr_error, "codes": self.codes,
            "faces": self.faces, "colours": [{"name": n, "share": round(s, 3)} for n, s in self.colours],
            "sharpness": round(self.sharpness, 1), "exposure": self.exposure,
        }


class LocalModel(BaseVisionModel):
    """The no-key default. ``options`` that only language models understand are ignored."""

    provider_kind = "local"
    can_stream = False

    def __init__(self, *args: Any, ocr_engine: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = "local"
        self.max_images = 16
        self.ocr_engine = ocr_engine

    def source_side(self, detail: str = "auto") -> int:
        return OCR_SIDE

    def plan(self, messages: Any, options: Options | None = None) -> tuple[list[Message], RequestPlan]:
        options = options or Options()
        return list(messages), RequestPlan(model=self.name, images=[], text_tokens=0, max_output_tokens=0,
                                           input_usd_per_mtok=0.0, output_usd_per_mtok=0.0, free=True)

    def _complete(self, messages: list[Message], plan: RequestPlan, options: Options) -> Answer:
        question = next((m.text for m in reversed(messages) if m.role == "user"), "")
        frames = [p.frame for m in messages for p in m.images]
        findings = [self.analyse(f) for f in frames]
        text = compose_answer(question, findings)
        return Answer(text=text, model=self.name, usage=Usage(cost_usd=0.0),
                      raw={"engine": "local", "findings": [f.to_dict() for f in findings]},
                      finish_reason="stop")

    def analyse(self, frame: Frame) -> Findings:
        return _analyse_cached(frame, self.ocr_engine)


_ANALYSE_CACHE: dict[tuple[str, str], Findings] = {}
_ANALYSE_LOCK = threading.Lock()


def _analyse_cached(frame: Frame, engine: str) -> Findings:
    key = (frame.digest, engine)
    with _ANALYSE_LOCK:
        if key in _ANALYSE_CACHE:
            return _ANALYSE_CACHE[key]
    found = analyse_frame(frame, ocr_engine=engine)
    with _ANALYSE_LOCK:
        if len(_ANALYSE_CACHE) > 32:
            _ANALYSE_CACHE.pop(next(iter(_ANALYSE_CACHE)))
        _ANALYSE_CACHE[key] = found
    return found


def analyse_frame(frame: Frame, *, ocr_engine: str = "auto") -> Findings:
    """Everything the local engine can find in one frame."""
    frame = frame.resized(OCR_SIDE)
    quality = measure(frame)
    found = Findings(frame.source, frame.size, sharpness=quality.sharpness, exposure=quality.exposure.verdict)
    _read_text(frame, found, ocr_engine)
    found.codes = detect_codes(frame)
    found.faces = count_faces(frame)
    found.colours = dominant_colours(frame)
    return found


def _read_text(frame: Frame, found: Findings, engine: str) -> None:
    from ..ocr import read_text

    try:
        result = read_text(frame, engine=engine)
    except (OcrError, MissingExtraError) as exc:
        found.ocr_error = str(exc)
        return
    good = result.above(0.5)
    found.ocr_engine = result.engine
    found.ocr_confidence = good.confidence
    lines = [ln for ln in good.lines if _is_wordy(ln.text)]
    found.text_lines = [ln.text for ln in lines]
    wordy = [ln for ln in lines if any(any(c.isalpha() for c in w.text) for w in ln.words)]
    if wordy:
        # The title is the line of the tallest letters (digits such as prices do not count).
        ranked = sorted(wordy, key=lambda ln: -_letter_height(ln))
        title = ranked[0]
        # A title often spans several lines of the same size: join the neighbours of similar height.
        title_h = _letter_height(title)
        block = [ln for ln in wordy if abs(_letter_height(ln) - title_h) <= 0.15 * title_h]
        block = [ln for ln in block if abs(ln.index - title.index) <= 2]
        found.title = " ".join(ln.text for ln in sorted(block, key=lambda ln: ln.index))
        byline = next((ln.text for ln in lines if re.match(r"(?i)^\s*by\s+\S", ln.text)), None)
        if byline is None:
            others = [ln for ln in ranked[1:] if ln not in block and len(ln.text.split()) <= 5]
            byline = others[0].text if others else None
        found.byline = byline


def _letter_height(line: Any) -> float:
    """Type size of a line's words: the geometric mean of box height and width per character, which
    is steadier than the height alone (OCR boxes often swallow a rule or an accent)."""
    sizes = [(w.height * w.width / len(w.text)) ** 0.5 for w in line.words if any(c.isalpha() for c in w.text)]
    return float(np.median(sizes)) if sizes else 0.0


def _is_wordy(text: str) -> bool:
    return sum(c.isalnum() for c in text) >= 2


@lru_cache(maxsize=1)
def _face_cascade() -> Any:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    return None if cascade.empty() else cascade


_CV_LOCK = threading.Lock()


def count_faces(frame: Frame) -> int:
    cascade = _face_cascade()
    if cascade is None:
        return 0
    small = frame.resized(800)
    gray = cv2.equalizeHist(small.to_gray())
    min_side = max(24, min(small.size) // 12)
    with _CV_LOCK:
        faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=6, minSize=(min_side, min_side))
    return len(faces)


def detect_codes(frame: Frame) -> list[dict[str, str]]:
    """Barcodes (EAN, UPC, Code 128...) and QR codes OpenCV can decode."""
    bgr = frame.resized(1600).to_bgr()
    codes: list[dict[str, str]] = []
    with _CV_LOCK:
        try:
            ok, texts, _points, _ = cv2.QRCodeDetector().detectAndDecodeMulti(bgr)
            if ok:
                codes += [{"type": "QR", "data": t} for t in texts if t]
        except cv2.error as exc:  # pragma: no cover - OpenCV version dependent
            log.debug("QR detection failed: %s", exc)
        try:
            codes += _decode_barcodes(bgr)
        except (cv2.error, AttributeError) as exc:  # pragma: no cover - OpenCV version dependent
            log.debug("barcode detection failed: %s", exc)
    return codes


def _decode_barcodes(bgr: np.ndarray) -> list[dict[str, str]]:
    """1-D barcodes. OpenCV's decoder is sensitive to the bar width in pixels: when a barcode is
    found but does not decode, the image is retried enlarged (crops lose the context it needs)."""
    detector = cv2.barcode.BarcodeDetector()
    ok, infos, types, _points = detector.detectAndDecodeWithType(bgr)
    found = {(str(t), str(k)) for t, k in zip(infos, types, strict=False) if t} if ok else set()
    if not found and detector.detect(bgr)[0]:
        for scale in (1.5, 2.5):
            if max(bgr.shape[:2]) * scale > 4000:
                break
            big = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            ok, infos, types, _points = detector.detectAndDecodeWithType(big)
            found = {(str(t), str(k)) for t, k in zip(infos, types, strict=False) if t} if ok else set()
            if found:
                break
    return [{"type": kind, "data": data} for data, kind in sorted(found)]


def dominant_colours(frame: Frame, k: int = 5) -> list[tuple[str, float]]:
    small = frame.resized(64).pixels.reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    k = min(k, len(small))
    cv2.setRNGSeed(0)
    _compactness, labels, centres = cv2.kmeans(small, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    shares: dict[str, float] = {}
    counts = np.bincount(labels.flatten(), minlength=k) / len(labels)
    for centre, share in zip(centres, counts, strict=False):
        name = _colour_name(centre)
        shares[name] = shares.get(name, 0.0) + float(share)
    return sorted(((n, s) for n, s in shares.items() if s >= 0.05), key=lambda x: -x[1])[:3]


@lru_cache(maxsize=1)
def _palette_lab() -> tuple[list[str], np.ndarray]:
    names = list(_COLOURS)
    rgb = np.array([_COLOURS[n] for n in names], dtype=np.uint8).reshape(1, -1, 3)
    return names, cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)


def _colour_name(rgb: np.ndarray) -> str:
    names, lab = _palette_lab()
    px = cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8).reshape(1, 1, 3), cv2.COLOR_RGB2LAB)
    d = np.linalg.norm(lab - px.reshape(1, 3).astype(np.float32), axis=1)
    return names[int(np.argmin(d))]


# -- composing the answer ------------------------------------------------------------------------

_TOPICS = {
    "title": re.compile(r"(?i)\b(title|author|wrote|writer|book|called|name|cover|headline|brand)\b"),
    "text": re.compile(r"(?i)\b(read|text|say|says|written|writing|words|transcribe|label|sign)\b"),
    "codes": re.compile(r"(?i)\b(barcode|qr|code|ean|upc|isbn|link|url)\b"),
    "faces": re.compile(r"(?i)\b(face|faces|person|people|anyone|someone)\b"),
    "colours": re.compile(r"(?i)\b(colou?rs?|shade|hue)\b"),
    "quality": re.compile(r"(?i)\b(blur|blurry|sharp|focus|exposure|dark|bright|quality)\b"),
}
_DEFAULT_ORDER = ["title", "text", "codes", "faces", "colours", "quality"]
_SPECIFIC_FIRST = ["codes", "faces", "colours", "quality", "title", "text"]  # "text" words are the vaguest


def compose_answer(question: str, findings: list[Findings]) -> str:
    """A plain report of the findings, the parts the question is about first."""
    if not findings:
        return (
            "Local engine (not a language model): there is no image to look at, and it cannot answer "
            f"questions without one. {CONNECT_HINT}"
        )
    wanted = [name for name in _SPECIFIC_FIRST if _TOPICS[name].search(question or "")]
    order = wanted + [name for name in _DEFAULT_ORDER if name not in wanted]
    out = [
        "Local engine (not a language model): I cannot understand the question, but here is what this "
        "machine can see" + (f" in {len(findings)} images." if len(findings) > 1 else ".")
    ]
    for i, f in enumerate(findings, 1):
        if len(findings) > 1:
            out.append(f"\nImage {i} ({f.source}):")
        for topic in order:
            out.extend(_section(topic, f))
    out.append("\n" + CONNECT_HINT)
    return "\n".join(out)


def _section(topic: str, f: Findings) -> list[str]:
    if topic == "title":
        if f.title:
            lines = [f'Likely title (the most prominent text): "{f.title}"']
            if f.byline:
                lines.append(f'Possible author or subtitle: "{f.byline}"')
            return lines
        return []
    if topic == "text":
        if f.ocr_error:
            return [f"Text: not read ({f.ocr_error})"]
        if not f.text_lines:
            return ["Text: none found"]
        shown = f.text_lines[:40]
        more = f" (+{len(f.text_lines) - 40} more lines)" if len(f.text_lines) > 40 else ""
        head = (f"Text ({f.ocr_engine} OCR, {len(f.text_lines)} lines, "
                f"{f.ocr_confidence:.0%} mean confidence){more}:")
        return [head, *(f"  {line}" for line in shown)]
    if topic == "codes":
        if not f.codes:
            return ["Barcodes/QR codes: none found"]
        return ["Codes: " + "; ".join(f'{c["type"]} "{c["data"]}"' for c in f.codes)]
    if topic == "faces":
        return [f"Faces: {f.faces} found" if f.faces else "Faces: none found"]
    if topic == "colours":
        if not f.colours:
            return []
        return ["Main colours: " + ", ".join(f"{n} ({s:.0%})" for n, s in f.colours)]
    if topic == "quality":
        sharp = "blurred" if f.sharpness < 50 else "sharp"
        return [f"Image: {f.size[0]}x{f.size[1]}, {sharp} (sharpness {f.sharpness:.0f}), exposure {f.exposure}"]
    return []  # pragma: no cover
