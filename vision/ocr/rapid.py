"""RapidOCR (PP-OCRv4 detection and recognition in ONNX, models inside the wheel), tuned for speed
and for English spacing.

Two measured changes over calling ``RapidOCR()(image)`` (see ``benchmarks/ocr_bench.py``):

* detection runs on a copy scaled to ``det_side`` pixels on the long side, while recognition crops
  come from the image itself (box coordinates are scaled back), and recognition runs at a 32 px
  line height instead of 48: together about twice as fast on one core for the same text;
* the recognition model was trained mostly on Chinese and seldom emits spaces, so English words run
  together ("TOTALEXCL.GST"). The CTC decoder says where each character was read, and the line image
  says where the ink has word-wide gaps: a gap between two characters is a space.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import cv2
import numpy as np

from ..errors import MissingExtraError
from ..frame import Frame
from .result import Box, OcrResult, OcrWord, group_rows, split_words

log = logging.getLogger(__name__)

class RapidOcrPipeline:
    """Detection on a reduced image, recognition on full-resolution crops, spacing from CTC columns."""

    def __init__(self, *, det_side: int = 1280, rec_height: int = 32, threads: int = 1) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise MissingExtraError("ocr", "RapidOCR", "rapidocr-onnxruntime") from exc
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        self._engine = RapidOCR(
            intra_op_num_threads=threads, inter_op_num_threads=1, rec_img_shape=[3, rec_height, 160],
            rec_batch_num=8,
        )
        self.det_side = det_side
        self._lock = threading.Lock()

    def __call__(self, bgr: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        """``[(quad, text, confidence), ...]`` in full-resolution coordinates, spaces restored."""
        eng = self._engine
        h, w = bgr.shape[:2]
        # detection sees the page at det_side pixels (enlarged up to 2x: small print is found more
        # often on a larger page), recognition crops come from the image as it is
        scale = min(2.0, self.det_side / max(h, w))
        small = bgr
        if scale != 1:
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            small = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=interp)
        with self._lock:
            boxes, _ = eng.text_det(small)
            if boxes is None or len(boxes) == 0:
                return []
            quads = [np.asarray(b, dtype=np.float32) / scale for b in boxes]
            crops = eng.get_crop_img_list(bgr, quads)
            recs, _ = eng.text_rec(crops, True)
        out = []
        for quad, crop, rec in zip(quads, crops, recs, strict=False):
            text, conf = rec[0], float(rec[1])
            if not text.strip():
                continue
            spaced = with_spaces(text, rec[2], crop) if len(rec) > 2 else text
            out.append((quad, spaced, conf))
        return out


def _ink_gaps(crop: np.ndarray) -> list[tuple[int, int]]:
    """Runs of blank columns inside a text line at least a word space wide (0.3 x the line height)."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    _t, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    h = ink.shape[0]
    # trim a sliver top and bottom against neighbouring lines bleeding in, but keep the height of a
    # T's bar: trimmed away, a T is a thin stem with word-wide blanks on both sides
    core = ink[int(h * 0.05): int(h * 0.95) + 1]
    columns = core.sum(axis=0) > 0
    inked = np.flatnonzero(columns)
    if len(inked) < 2:
        return []
    gaps, start = [], None
    for x in range(int(inked[0]), int(inked[-1]) + 1):
        if not columns[x] and start is None:
            start = x
        elif columns[x] and start is not None:
            if x - start >= 0.3 * h:
                gaps.append((start, x))
            start = None
    return gaps


def with_spaces(text: str, info: Any, crop: np.ndarray) -> str:
    """Insert a space between two characters where the line image has a word-wide blank between
    where the recogniser read them (it reads English well but seldom emits the spaces)."""
    try:
        col_num, words, word_cols, _states, _confs = info
        chars = [c for word in words for c in word]
        cols = [c for wc in word_cols for c in wc]
    except (TypeError, ValueError):
        return text
    if len(chars) != len(cols) or len(cols) < 2 or not col_num or ("".join(chars) != text.replace(" ", "") and \
            "".join(chars) != text):
        return text
    gaps = _ink_gaps(crop)
    if not gaps:
        return text
    height = crop.shape[0]
    scale = crop.shape[1] / float(col_num)
    xs = [(c + 0.5) * scale for c in cols]
    out = [chars[0]]
    for i in range(1, len(chars)):
        a, b = chars[i - 1], chars[i]
        if b != " " and out[-1] != " " and not (a in _JOINERS or b in _JOINERS):
            # narrow digits ("11") leave wide blanks between them: digits need a much wider gap
            need = 0.65 * height if a.isdigit() and b.isdigit() else 0.0
            if any(xs[i - 1] <= (g0 + g1) / 2 <= xs[i] and g1 - g0 >= need for g0, g1 in gaps):
                out.append(" ")
        out.append(b)
    return "".join(out)


_JOINERS = set("/.:,-'%&()")


def result_from_pipeline(items: list[tuple[np.ndarray, str, float]], size: tuple[int, int], seconds: float,
                         page: int = 0) -> OcrResult:
    """Lines ordered in rows (top to bottom, left to right), split into words with boxes."""
    boxes: list[Box] = []
    for quad, _text, _conf in items:
        xs, ys = quad[:, 0], quad[:, 1]
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())))
    words: list[OcrWord] = []
    for line_idx, row in enumerate(group_rows(boxes)):
        for i in sorted(row, key=lambda k: boxes[k][0]):
            _quad, text, conf = items[i]
            words.extend(split_words(text, boxes[i], conf, line_idx, page))
    return OcrResult(tuple(words), "rapidocr", "eng", size, seconds)


def read_frame(pipeline: RapidOcrPipeline, frame: Frame, page: int = 0) -> OcrResult:
    import time

    start = time.perf_counter()
    items = pipeline(frame.to_bgr())
    return result_from_pipeline(items, frame.size, time.perf_counter() - start, page)
