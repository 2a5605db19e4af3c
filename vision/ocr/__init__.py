"""On-machine OCR: engines (Tesseract, RapidOCR) returning :class:`OcrResult`."""

from .engines import ENGINES, OcrEngine, available_engines, get_engine, read_text
from .result import OcrLine, OcrResult, OcrWord

__all__ = ["ENGINES", "OcrEngine", "OcrLine", "OcrResult", "OcrWord", "available_engines", "get_engine",
           "read_text"]
