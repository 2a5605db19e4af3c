"""Region of interest: keep small print legible by sending a crop of the text, found on this machine.

A provider shrinks the whole frame to its planned size (see :meth:`vision.encode.TokenRule.target_size`);
text whose letters fall below :data:`MIN_TEXT_PX` there is hard to read for any model. When the
question needs reading (a title, a label, a price), :func:`plan_roi` finds the text regions locally
(connected components of ink by default, some 30 ms for a 720p frame; or OCR line boxes), measures
how tall their letters would arrive, and when they would be too small it sends a crop around them, alone or
together with the whole frame for context.

>>> from vision import Frame, get_model
>>> roi = plan_roi(Frame.load("assets/receipt.png"), "What is the total?", get_model("local"))
>>> roi.mode            # the local engine reads the frame itself: nothing is shrunk
'none'
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from .config import Detail
from .frame import Frame
from .providers.base import BaseVisionModel, ImagePart, Message, Options

log = logging.getLogger(__name__)

RoiMode = Literal["auto", "off", "crop", "both"]
ROI_MODES: tuple[str, ...] = ("auto", "off", "crop", "both")
MIN_TEXT_PX = 9.0  # letter height (median of a line's letters) below which models start to misread
DETECT_SIDE = 1600  # text regions are searched on a frame reduced to this long side
MIN_GAIN = 1.25  # a crop must make the letters at least this much larger to be worth its tokens
MAX_CROP_SHARE = 0.6  # a crop covering more of the frame than this saves little: send it all at high detail

_SMALL_PRINT = re.compile(
    r"(?i)\b(read|reading|text|says?|said|written|writing|words?|titles?|author|labels?|ingredients?|"
    r"nutrition|allergens?|calories|prices?|costs?|totals?|amounts?|numbers?|serial|dates?|expir\w*|"
    r"small print|fine print|signs?|transcribe|spell\w*|names?|address|phone|receipts?|menu|page|"
    r"isbn|model|brand|dosage|instructions?|warnings?|licen[cs]e|plate)\b"
)


def needs_small_print(question: str) -> bool:
    """Whether answering ``question`` probably means reading text in the picture."""
    return bool(_SMALL_PRINT.search(question or ""))


@dataclass(frozen=True)
class TextRegion:
    """A line of text: its box in frame pixels and its letters' median height in pixels."""

    box: tuple[int, int, int, int]
    height: float


@dataclass(frozen=True)
class RoiPlan:
    """What to send for one frame: the whole frame, a crop, or both."""

    mode: Literal["none", "crop", "both", "high"]
    crop: tuple[int, int, int, int] | None = None
    text_px: float | None = None  # letter height of the small text as the whole frame would arrive
    crop_text_px: float | None = None  # the same text as the crop would arrive
    reason: str = ""

    def parts(self, frame: Frame, detail: Detail) -> tuple[ImagePart, ...]:
        """The image parts of the request: the crop goes in as its own frame, at ``high`` detail."""
        if self.mode == "high":
            return (ImagePart(frame, "high"),)
        if self.crop is None or self.mode == "none":
            return (ImagePart(frame, detail),)
        crop = ImagePart(frame.crop(self.crop), "high")
        return (ImagePart(frame, detail), crop) if self.mode == "both" else (crop,)

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "crop": list(self.crop) if self.crop else None,
                "text_px": None if self.text_px is None else round(self.text_px, 1),
                "crop_text_px": None if self.crop_text_px is None else round(self.crop_text_px, 1),
                "reason": self.reason}


def find_text_regions(frame: Frame, *, method: Literal["components", "ocr"] = "components") -> list[TextRegion]:
    """Text lines in ``frame``, largest type first: from connected components of ink (fast, no OCR
    engine needed) or from OCR line boxes (slower, fewer false regions)."""
    if method == "ocr":
        return _regions_from_ocr(frame)
    if method != "components":
        raise ValueError(f"unknown text region method {method!r}; use 'components' or 'ocr'")
    return _regions_from_components(frame)


def _regions_from_components(frame: Frame) -> list[TextRegion]:
    """Letters are blobs of ink (darker or lighter than their surroundings) about as wide as tall;
    letters of similar size side by side make a line. Rules, bars and wood grain are too elongated
    to be letters, and a line needs at least three of them."""
    gray = frame.to_gray()
    h, w = gray.shape
    scale = min(1.0, DETECT_SIDE / max(h, w))
    if scale < 1:
        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    gh, gw = gray.shape
    out: list[TextRegion] = []
    for polarity, offset in ((cv2.THRESH_BINARY_INV, 12), (cv2.THRESH_BINARY, -12)):  # dark ink, light ink
        ink = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, polarity, 31, offset)
        _, labels, stats, centres = cv2.connectedComponentsWithStats(ink, connectivity=8)
        cw, ch, area = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
        fill = area / np.maximum(cw * ch, 1)
        letters = np.flatnonzero((ch >= 5) & (ch <= gh / 6) & (cw <= 3 * ch) & (area >= 12)
                                 & (fill >= 0.1) & (fill <= 0.95))
        low = 5
        while low <= gh / 6:  # letters of one size class at a time, so a gap is measured against their size
            high = low * 2
            group = letters[(ch[letters] >= low) & (ch[letters] < high)]
            low = high
            if len(group) < 3:
                continue
            mask = np.isin(labels, group + 1).astype(np.uint8) * 255
            kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, int(high * 0.9)), max(1, high // 3)))
            lines_n, lines, line_stats, _ = cv2.connectedComponentsWithStats(cv2.morphologyEx(mask, cv2.MORPH_CLOSE,
                                                                                             kernel), connectivity=8)
            cx = centres[group + 1, 0].astype(int).clip(0, gw - 1)
            cy = centres[group + 1, 1].astype(int).clip(0, gh - 1)
            member = lines[cy, cx]
            counts = np.bincount(member, minlength=lines_n)
            for j in range(1, lines_n):
                lx, ly, lw, lh, _ = line_stats[j]
                if counts[j] < 3 or lw < 2 * lh:
                    continue
                box = (int(lx / scale), int(ly / scale), int(np.ceil((lx + lw) / scale)),
                       int(np.ceil((ly + lh) / scale)))
                out.append(TextRegion(box, float(np.median(ch[group][member == j])) / scale))
    return sorted(out, key=lambda r: -r.height)


def _regions_from_ocr(frame: Frame) -> list[TextRegion]:
    from .ocr import read_text

    result = read_text(frame).above(0.4)
    # an OCR line box spans ascenders to descenders; letters are about 0.7 of that
    return sorted((TextRegion(line.box, 0.7 * float(line.height)) for line in result.lines
                   if sum(c.isalnum() for c in line.text) >= 2), key=lambda r: -r.height)


def _planned_width(model: BaseVisionModel, part: ImagePart, question: str) -> int | None:
    """The width the model's request would carry the image at; ``None`` when nothing is encoded
    (the model looks at the frame itself, like the local engine)."""
    _, plan = model.plan([Message("user", question, (part,))], Options(detail=part.detail))
    return plan.images[0].width if plan.images else None


def _pad(box: tuple[int, int, int, int], margin: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    m = round(margin)
    return max(0, x0 - m), max(0, y0 - m), min(size[0], x1 + m), min(size[1], y1 + m)


def plan_roi(
    frame: Frame,
    question: str,
    model: BaseVisionModel,
    *,
    detail: Detail = "auto",
    mode: RoiMode = "auto",
    min_text_px: float = MIN_TEXT_PX,
    method: Literal["components", "ocr"] = "components",
    regions: list[TextRegion] | None = None,
) -> RoiPlan:
    """Decide whether ``frame`` needs a crop for ``question`` with ``model``.

    ``mode``: ``auto`` (a crop plus the whole frame when the model takes two images, else the crop),
    ``crop``, ``both``, or ``off``. Nothing changes when the question does not need reading, when
    the model does not shrink the frame, or when the text would arrive at least ``min_text_px`` tall.
    """
    if mode not in ROI_MODES:
        raise ValueError(f"unknown ROI mode {mode!r}; use one of {', '.join(ROI_MODES)}")
    if mode == "off":
        return RoiPlan("none", reason="turned off")
    if not needs_small_print(question):
        return RoiPlan("none", reason="the question does not need small print")
    sent_w = _planned_width(model, ImagePart(frame, detail), question)
    if sent_w is None:
        return RoiPlan("none", reason="the model reads the frame at full resolution")
    scale = sent_w / frame.width
    if scale >= 1:
        return RoiPlan("none", reason="the frame is sent at full resolution")
    found = find_text_regions(frame, method=method) if regions is None else regions
    small = [r for r in found if r.height * scale < min_text_px]
    if not small:
        text_px = min((r.height for r in found), default=None)
        return RoiPlan("none", text_px=None if text_px is None else text_px * scale,
                       reason="no text found" if not found else "the text stays legible")
    typical = float(np.median([r.height for r in small]))  # of the lines too small to read
    union = (min(r.box[0] for r in small), min(r.box[1] for r in small),
             max(r.box[2] for r in small), max(r.box[3] for r in small))
    crop = _pad(union, 2.0 * typical, frame.size)
    area_share = (crop[2] - crop[0]) * (crop[3] - crop[1]) / float(frame.width * frame.height)
    if area_share > MAX_CROP_SHARE:
        high_w = _planned_width(model, ImagePart(frame, "high"), question) or frame.width
        if high_w < MIN_GAIN * sent_w:
            return RoiPlan("none", text_px=typical * scale, crop_text_px=typical * high_w / frame.width,
                           reason="small text all over the frame, already sent at the largest useful size")
        return RoiPlan("high", text_px=typical * scale, crop_text_px=typical * high_w / frame.width,
                       reason=f"small text covers {area_share:.0%} of the frame: the whole frame at high detail")
    crop_frame = frame.crop(crop)
    crop_w = _planned_width(model, ImagePart(crop_frame, "high"), question) or crop_frame.width
    text_px, crop_text_px = typical * scale, typical * crop_w / crop_frame.width
    if crop_text_px < MIN_GAIN * text_px:
        return RoiPlan("none", text_px=text_px, crop_text_px=crop_text_px,
                       reason="small text, but a crop would not make it much larger")
    chosen = ("both" if model.max_images >= 2 else "crop") if mode == "auto" else mode
    if chosen == "both" and model.max_images < 2:
        chosen = "crop"
    plan = RoiPlan(chosen, crop=crop, text_px=text_px, crop_text_px=crop_text_px,
                   reason=f"letters {text_px:.0f} px tall in the whole frame, {crop_text_px:.0f} px in the crop")
    log.debug("%s: %s", frame.source, plan.reason)
    return plan


__all__ = ["MIN_TEXT_PX", "ROI_MODES", "RoiPlan", "TextRegion", "find_text_regions", "needs_small_print",
           "plan_roi"]
