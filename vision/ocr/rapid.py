"""RapidOCR (PP-OCRv4 detection and recognition in ONNX, models inside the wheel), tuned for speed
and for English text.

Measured changes over calling ``RapidOCR()(image)`` (``benchmarks/ocr_bench.py``, 50 SROIE receipts):

* the models run on OpenVINO when it is installed (the ``ocr`` extra installs it): 1.42 s per receipt
  on one core in float32 against 1.82 s on onnxruntime, and 0.89 s in bfloat16, its default on CPUs
  that compute it natively (CER 0.117 against 0.118 in float32). ``VISION_OCR_RUNTIME=onnxruntime``
  keeps onnxruntime, which then runs with its memory arena on (rapidocr turns it off: detection 35%
  slower);
* recognition at the models' own 48 px line height (at 32 px double letters collapse: "SUMARY");
* detection boxes grown more (unclip 2.0, not 1.6: first and last letters were cut off), a lower
  box threshold (0.4) and a smaller detection image (shorter side 640, not 736): CER 0.119 -> 0.117;
* the recogniser was trained mostly on Chinese and seldom emits spaces, so English words run
  together ("TOTALEXCL.GST"). The CTC decoder says where each character was read, and the line
  image says where the ink has gaps: a gap wide for the line's font between two characters that
  are further apart than the line's usual pitch is a space;
* full-width punctuation folded to ASCII (NFKC) and O/0 read in the wrong place fixed by context
  ("4030O" -> "40300", "N0:" -> "NO:").
"""

from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import MissingExtraError, OcrError
from ..frame import Frame
from .result import Box, OcrResult, OcrWord, group_rows, split_words

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "openvino", "onnxruntime")


class _Model:
    """One ONNX model on OpenVINO (at its default precision: bfloat16 on CPUs that compute it
    natively, else float32) or onnxruntime, called as ``model(batch) -> [output]``."""

    def __init__(self, path: Path, *, runtime: str, threads: int) -> None:
        self.runtime = runtime
        if runtime == "openvino":
            import openvino as ov

            core = ov.Core()
            compiled = core.compile_model(core.read_model(str(path)), "CPU", {
                "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})
            self._request = compiled.create_infer_request()
        else:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self._input = self._session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        if self.runtime == "openvino":
            return [self._request.infer({0: batch}, share_inputs=True)[0]]
        return [self._session.run(None, {self._input: batch})[0]]


def choose_runtime(name: str | None = None) -> str:
    """``openvino`` when installed (or asked for), else ``onnxruntime``; ``VISION_OCR_RUNTIME`` overrides."""
    name = (name or os.environ.get("VISION_OCR_RUNTIME") or "auto").lower()
    if name not in RUNTIMES:
        raise OcrError(f"unknown OCR runtime {name!r}; choose one of {', '.join(RUNTIMES)}", engine="rapidocr")
    if name in ("auto", "openvino"):
        try:
            import openvino  # noqa: F401
        except ImportError as exc:
            if name == "openvino":
                raise MissingExtraError("ocr", "RapidOCR on OpenVINO", "openvino") from exc
            return "onnxruntime"
        return "openvino"
    return "onnxruntime"


def _bucket(size: int, step: int) -> int:
    """``size`` rounded up to a multiple of ``step``: the runtimes prepare kernels per input shape
    (50-60 ms each time on one core), so a few shapes reused beat many exact ones."""
    return -(-size // step) * step


class RapidOcrPipeline:
    """Detection on a reduced image, recognition on full-resolution crops, spacing from CTC columns.

    rapidocr provides the models, the box post-processing and the CTC decoder; the two model calls
    are made here, with inputs padded to a few reused shapes and normalised in float32.
    """

    def __init__(self, *, det_side: int = 1280, det_min_side: int = 640, rec_height: int = 48, threads: int = 1,
                 runtime: str | None = None) -> None:
        try:
            import rapidocr_onnxruntime
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise MissingExtraError("ocr", "RapidOCR", "rapidocr-onnxruntime") from exc
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        self.runtime = choose_runtime(runtime)
        engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)
        self._crop = engine.get_crop_img_list
        self._det_post = engine.text_det.postprocess_op
        self._det_post.unclip_ratio = 2.0
        self._det_post.box_thresh = 0.4
        self._det_filter = engine.text_det.filter_tag_det_res
        self._decode = engine.text_rec.postprocess_op
        models = Path(rapidocr_onnxruntime.__file__).parent / "models"
        det_path, rec_path = models / "ch_PP-OCRv4_det_infer.onnx", models / "ch_PP-OCRv4_rec_infer.onnx"
        if not (det_path.is_file() and rec_path.is_file()):
            raise OcrError(f"RapidOCR's models are not in {models}; reinstall rapidocr-onnxruntime", engine="rapidocr")
        # rapidocr's own onnxruntime sessions (memory arena off) are dropped for ours
        engine.text_det.infer = engine.text_rec.session = engine.text_cls = None
        try:
            self._det = _Model(det_path, runtime=self.runtime, threads=threads)
            self._rec = _Model(rec_path, runtime=self.runtime, threads=threads)
        except Exception as exc:
            if self.runtime != "openvino":
                raise OcrError(f"RapidOCR's models could not be loaded: {exc}", engine="rapidocr") from exc
            log.warning("OpenVINO could not load RapidOCR's models (%s); using onnxruntime", exc)
            self.runtime = "onnxruntime"
            self._det = _Model(det_path, runtime=self.runtime, threads=threads)
            self._rec = _Model(rec_path, runtime=self.runtime, threads=threads)
        self.det_side, self.det_min_side, self.rec_height = det_side, det_min_side, rec_height
        self.rec_batch, self.rec_min_ratio = 8, 160 / 48
        self._lock = threading.Lock()

    def __call__(self, bgr: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        """``[(quad, text, confidence), ...]`` in full-resolution coordinates, spaces restored."""
        with self._lock:
            quads = self._detect(bgr)
            if not quads:
                return []
            crops = self._crop(bgr, quads)
            recs = self._recognise(crops)
        out = []
        for quad, crop, rec in zip(quads, crops, recs, strict=True):
            text, conf = rec[0], float(rec[1])
            if not text.strip():
                continue
            out.append((quad, fix_text(with_spaces(text, rec[2], crop)), conf))
        return out

    def _detect(self, bgr: np.ndarray) -> list[np.ndarray]:
        h, w = bgr.shape[:2]
        if min(h, w) < 4:
            return []
        # the page at det_side pixels on its long side (enlarged at most 2x), then enlarged again if
        # its short side is under det_min_side, but never past 4 x det_side (a strip 40 x 1500 px
        # would become 640 x 24000); sides are multiples of 32, as the network needs
        scale = min(2.0, self.det_side / max(h, w))
        scale *= max(1.0, self.det_min_side / (min(h, w) * scale))
        scale = min(scale, 4 * self.det_side / max(h, w))
        rh, rw = max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32)
        resized = cv2.resize(bgr, (rw, rh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        ph, pw = _bucket(rh, 128), _bucket(rw, 128)
        if (ph, pw) != (rh, rw):
            resized = cv2.copyMakeBorder(resized, 0, ph - rh, 0, pw - rw, cv2.BORDER_REPLICATE)
        batch = (resized.astype(np.float32) * np.float32(2 / 255) - np.float32(1)).transpose(2, 0, 1)[None]
        pred = self._det(np.ascontiguousarray(batch))[0][:, :, :rh, :rw]
        boxes, _scores = self._det_post(pred, (h, w))
        if len(boxes) == 0:
            return []
        return [np.asarray(b, dtype=np.float32) for b in self._det_filter(boxes, (h, w))]

    def _recognise(self, crops: list[np.ndarray]) -> list[Any]:
        height = self.rec_height
        ratios = [c.shape[1] / max(1, c.shape[0]) for c in crops]
        order = np.argsort(ratios, kind="stable")
        results: list[Any] = [None] * len(crops)
        for start in range(0, len(crops), self.rec_batch):
            idx = order[start: start + self.rec_batch]
            width = _bucket(int(height * max(self.rec_min_ratio, max(ratios[i] for i in idx))), 64)
            batch = np.zeros((len(idx), 3, height, width), dtype=np.float32)
            for j, i in enumerate(idx):
                rw = min(width, int(np.ceil(height * ratios[i])))
                line = cv2.resize(crops[i], (rw, height))
                batch[j, :, :, :rw] = line.transpose(2, 0, 1).astype(np.float32) * np.float32(2 / 255) - 1
            preds = self._rec(batch)[0]
            decoded = self._decode(preds, True, wh_ratio_list=[ratios[i] for i in idx], max_wh_ratio=width / height)
            for j, i in enumerate(idx):
                results[i] = decoded[j]
        return results


# Spacing rules, measured on the 50 SROIE receipts (flat around these values: each moved by one step
# changes the CER by less than 0.001). Gaps are in units of the line crop's height.
GAP = 0.25  # a word-wide blank between two characters
DIGIT_GAP = 0.4  # narrow digits ("11") leave wide blanks between them: digits need a wider one
GAP_OVER_MEDIAN = 2.0  # and at least twice the line's median blank (letter-spaced and dot-matrix print)
PITCH_OVER_MEDIAN = 1.2  # and the two characters further apart than 1.2x the line's median pitch
ROW_TOLERANCE = 0.4  # detection boxes are about three times as tall as their letters
TRIM = 0.15  # rows trimmed top and bottom, where neighbouring lines bleed in


def _blank_runs(crop: np.ndarray) -> list[tuple[int, int]]:
    """Runs of columns with no ink between the first and last inked column of a text line."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    _t, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    h = ink.shape[0]
    columns = ink[int(h * TRIM): int(h * (1 - TRIM)) + 1].sum(axis=0) > 0
    inked = np.flatnonzero(columns)
    if len(inked) < 2:
        return []
    edges = np.diff(columns[inked[0]: inked[-1] + 1].astype(np.int8))
    starts = np.flatnonzero(edges == -1) + 1 + inked[0]
    ends = np.flatnonzero(edges == 1) + 1 + inked[0]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def with_spaces(text: str, info: Any, crop: np.ndarray) -> str:
    """Insert a space between two characters where the line image has a word-wide blank between
    where the recogniser read them (it reads English well but seldom emits the spaces)."""
    try:
        col_num, words, word_cols, _states, _confs = info
        chars = [c for word in words for c in word]
        cols = [c for wc in word_cols for c in wc]
    except (TypeError, ValueError):
        return text
    if len(chars) != len(cols) or len(cols) < 2 or not col_num or "".join(chars) != text:
        return text
    runs = _blank_runs(crop)
    if not runs:
        return text
    height = crop.shape[0]
    scale = crop.shape[1] / float(col_num)
    xs = [(c + 0.5) * scale for c in cols]
    # the line's own letter spacing, from what is surely inside words: blanks narrower than a word
    # gap, and neighbours with no such blank between them (a line of single letters has none)
    small_runs = sorted(b - a for a, b in runs if b - a < GAP * height)
    median_run = small_runs[len(small_runs) // 2] if small_runs else 0
    pitches = [xs[i] - xs[i - 1] for i in range(1, len(xs)) if chars[i] != " " and chars[i - 1] != " " and
               not any(xs[i - 1] <= (g0 + g1) / 2 <= xs[i] and g1 - g0 >= GAP * height for g0, g1 in runs)]
    pitch = float(np.median(pitches)) if pitches else 0.0
    out = [chars[0]]
    for i in range(1, len(chars)):
        a, b = chars[i - 1], chars[i]
        if b != " " and out[-1] != " " and xs[i] - xs[i - 1] >= PITCH_OVER_MEDIAN * pitch:
            need = max((DIGIT_GAP if a.isdigit() and b.isdigit() else GAP) * height, GAP_OVER_MEDIAN * median_run)
            if any(xs[i - 1] <= (g0 + g1) / 2 <= xs[i] and g1 - g0 >= need for g0, g1 in runs):
                out.append(" ")
        out.append(b)
    return "".join(out)


_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")
_CURRENCY_O = re.compile(r"(?<![A-Za-z])(RM|S\$|US\$|\$|€|£)[Oo](?=[.,]\d)")
_DECIMAL_AFTER = re.compile(r"[.,]\d")


_NUMBER_BEFORE = re.compile(r"\d[/.:,-]$")
_NUMBER_AFTER = re.compile(r"[/.:,-]\d")


def _fix_run(m: re.Match[str]) -> str:
    run, text = m.group(0), m.string
    letters = sum(c.isalpha() for c in run)
    digits = sum(c.isdigit() for c in run)
    if digits and letters == run.count("O") + run.count("o"):
        # digits and O's only, in a number: "4030O", "475OO", the "O7" of "21/O7/2017" (not "O2")
        if digits >= 2 or _NUMBER_BEFORE.search(text, 0, m.start()) or _NUMBER_AFTER.match(text, m.end()):
            return run.replace("O", "0").replace("o", "0")
        return run
    if "0" in run and letters and digits == run.count("0") and run[0].isalpha():
        # a 0 inside a word or ending one: "PH0NE", "N0:", "c0sts" (not "0g", "INV000", "RM0.50")
        chars = list(run)
        for i, c in enumerate(chars):
            if c != "0" or not chars[i - 1].isalpha():
                continue
            ends_word = i == len(chars) - 1 and not _DECIMAL_AFTER.match(text, m.end())
            if ends_word or (i + 1 < len(chars) and chars[i + 1].isalpha()):
                chars[i] = "o" if chars[i - 1].islower() else "O"
        return "".join(chars)
    return run


def fix_text(text: str) -> str:
    """Full-width punctuation as ASCII (the recogniser also reads Chinese) and O/0 fixed by context."""
    text = unicodedata.normalize("NFKC", text)
    text = _CURRENCY_O.sub(lambda m: m.group(1) + "0", text)
    return _ALNUM_RUN.sub(_fix_run, text)


def result_from_pipeline(items: list[tuple[np.ndarray, str, float]], size: tuple[int, int], seconds: float,
                         page: int = 0) -> OcrResult:
    """Lines ordered in rows (top to bottom, left to right), split into words with boxes."""
    boxes: list[Box] = []
    for quad, _text, _conf in items:
        xs, ys = quad[:, 0], quad[:, 1]
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())))
    words: list[OcrWord] = []
    for line_idx, row in enumerate(group_rows(boxes, tolerance=ROW_TOLERANCE)):
        for i in sorted(row, key=lambda k: boxes[k][0]):
            _quad, text, conf = items[i]
            words.extend(split_words(text, boxes[i], conf, line_idx, page))
    return OcrResult(tuple(words), "rapidocr", "eng", size, seconds)


def read_frame(pipeline: RapidOcrPipeline, frame: Frame, page: int = 0) -> OcrResult:
    import time

    start = time.perf_counter()
    items = pipeline(frame.to_bgr())
    return result_from_pipeline(items, frame.size, time.perf_counter() - start, page)
