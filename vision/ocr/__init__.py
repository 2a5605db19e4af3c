"""On-machine OCR: engines (Tesseract, RapidOCR, both combined) returning :class:`OcrResult`,
preprocessing, PDFs and overlays. :func:`read` is the one entry point."""

from .engines import ENGINES, OcrEngine, available_engines, get_engine, read_text
from .overlay import draw_overlay, page_overlays, save_overlay
from .preprocess import Preprocess
from .reader import read, read_frame, read_pages
from .result import OcrLine, OcrResult, OcrWord

__all__ = ["ENGINES", "OcrEngine", "OcrLine", "OcrResult", "OcrWord", "Preprocess", "available_engines",
           "draw_overlay", "get_engine", "page_overlays", "read", "read_frame", "read_pages", "read_text",
           "save_overlay"]
