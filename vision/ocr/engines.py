"""OCR engines behind one interface: Tesseract (pytesseract), RapidOCR, and ``auto``.

Each engine turns a :class:`~vision.frame.Frame` into an :class:`~vision.ocr.result.OcrResult`.
Engines are built once per process (RapidOCR loads its ONNX models on construction).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from functools import cache
from typing import Protocol, runtime_checkable

from ..errors import MissingExtraError, OcrError
from ..frame import Frame
from .result import OcrResult

log = logging.getLogger(__name__)

ENGINES = ("auto", "tesseract", "rapidocr", "combined")


@runtime_checkable
class OcrEngine(Protocol):
    name: str

    def read(self, frame: Frame, *, lang: str = "eng", psm: int | None = None) -> OcrResult: ...


class TesseractEngine:
    """Tesseract through pytesseract: one ``image_to_data`` process call per image.

    ``OMP_THREAD_LIMIT=1`` is set unless the user set it: Tesseract's OpenMP threads make it 4-7x
    slower on small machines for the same output.
    """

    name = "tesseract"
    upscale_small_text = True  # Tesseract reads best with letters 20-30 px high

    def __init__(self, *, timeout: float = 120.0) -> None:
        try:
            import pytesseract
        except ImportError as exc:
            raise MissingExtraError("ocr", "Tesseract OCR", "pytesseract") from exc
        if not shutil.which(pytesseract.pytesseract.tesseract_cmd):
            raise OcrError(
                "the tesseract binary is not installed: `sudo apt install tesseract-ocr` (Debian/Ubuntu), "
                "`brew install tesseract` (macOS), or use --engine rapidocr",
                engine=self.name,
            )
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        self._pt = pytesseract
        self.timeout = timeout
        self._languages: set[str] | None = None

    def languages(self) -> set[str]:
        if self._languages is None:
            try:
                self._languages = set(self._pt.get_languages(config=""))
            except Exception as exc:  # pragma: no cover - depends on the installed binary
                raise OcrError(f"cannot list installed languages: {exc}", engine=self.name) from exc
        return self._languages

    def read(self, frame: Frame, *, lang: str = "eng", psm: int | None = None) -> OcrResult:
        missing = [code for code in lang.split("+") if code and code not in self.languages()]
        if missing:
            pkgs = " ".join(f"tesseract-ocr-{m}" for m in missing)
            raise OcrError(
                f"language {'+'.join(missing)!r} is not installed (installed: "
                f"{', '.join(sorted(self.languages()))}); install it with `sudo apt install {pkgs}`",
                engine=self.name,
            )
        config = f"--psm {psm}" if psm else ""
        start = time.perf_counter()
        try:
            data = self._pt.image_to_data(
                frame.to_pil(), lang=lang, config=config, output_type=self._pt.Output.DICT, timeout=self.timeout
            )
        except RuntimeError as exc:
            raise OcrError(f"tesseract did not finish within {self.timeout:g} s", engine=self.name) from exc
        except self._pt.TesseractError as exc:
            raise OcrError(f"tesseract failed: {exc.message or exc}", engine=self.name) from exc
        return OcrResult.from_tesseract(data, size=frame.size, language=lang,
                                        seconds=time.perf_counter() - start)


class RapidOcrEngine:
    """RapidOCR (PP-OCR models in ONNX, shipped inside the ``rapidocr-onnxruntime`` wheel).

    Reads digits and dot-matrix print well; spaces are restored from the recogniser's character
    positions (see :mod:`vision.ocr.rapid`).
    """

    name = "rapidocr"
    # enlarging small print before reading helps it too: the recogniser's own resize of a small crop
    # loses more than a cubic enlargement first (dates right on 100% of SROIE against 92% without)
    upscale_small_text = True

    def __init__(self) -> None:
        from .rapid import RapidOcrPipeline

        self._pipeline = RapidOcrPipeline()

    def read(self, frame: Frame, *, lang: str = "eng", psm: int | None = None) -> OcrResult:
        from .rapid import read_frame

        del psm  # RapidOCR detects text lines itself
        if lang not in {"eng", "en", "chi_sim", "ch"}:
            log.warning("RapidOCR's bundled models read English and Chinese; %r may read poorly", lang)
        try:
            return read_frame(self._pipeline, frame)
        except Exception as exc:
            raise OcrError(f"RapidOCR failed: {exc}", engine=self.name) from exc


class CombinedEngine:
    """RapidOCR's characters (it reads digits and worn print better) with Tesseract's word spacing.

    Each RapidOCR line is aligned with the Tesseract words that overlap it; where the two agree on
    the characters, the spaces come from Tesseract. Costs both engines' time.
    """

    name = "combined"
    upscale_small_text = True

    def __init__(self) -> None:
        self._rapid = RapidOcrEngine()
        self._tess = TesseractEngine()

    def read(self, frame: Frame, *, lang: str = "eng", psm: int | None = None) -> OcrResult:
        from .merge import respace_with

        rapid = self._rapid.read(frame, lang="eng")
        tess = self._tess.read(frame, lang=lang, psm=psm)
        return respace_with(rapid, tess)


@cache
def _build(name: str) -> OcrEngine:
    if name == "tesseract":
        return TesseractEngine()
    if name == "rapidocr":
        return RapidOcrEngine()
    if name == "combined":
        return CombinedEngine()
    raise ValueError(f"unknown OCR engine {name!r}; choose one of {', '.join(ENGINES)}")


def available_engines() -> list[str]:
    """Engines that can run here, best first."""
    out = []
    for name in ("tesseract", "rapidocr"):
        try:
            _build(name)
        except (OcrError, MissingExtraError):
            continue
        out.append(name)
    return out


def get_engine(name: str = "auto") -> OcrEngine:
    """An engine by name; ``auto`` picks Tesseract where its binary exists, else RapidOCR."""
    if name != "auto":
        return _build(name)
    errors = []
    for candidate in ("tesseract", "rapidocr"):
        try:
            return _build(candidate)
        except (OcrError, MissingExtraError) as exc:
            errors.append(str(exc))
    raise OcrError(
        "no OCR engine is available: install the 'ocr' extra (`pip install 'vision-toolkit[ocr]'`, "
        "RapidOCR works from pip alone) and, better, Tesseract (`sudo apt install tesseract-ocr`). "
        + " | ".join(errors)
    )


def read_text(frame: Frame, *, engine: str = "auto", lang: str = "eng", psm: int | None = None) -> OcrResult:
    """OCR one frame with the named engine."""
    return get_engine(engine).read(frame, lang=lang, psm=psm)
