"""OCR engines on generated images, the result type, preprocessing, PDFs, overlays, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vision.errors import DocumentError, OcrError
from vision.frame import Frame
from vision.ocr import OcrResult, OcrWord, Preprocess, get_engine, read, read_pages, save_overlay
from vision.ocr.engines import TesseractEngine, _build
from vision.ocr.merge import respace
from vision.ocr.preprocess import estimate_skew, prepare

from .conftest import TESSERACT, has_rapidocr, text_image
from .pdf_support import image_pdf, text_pdf

ENGINES = [
    pytest.param("tesseract", marks=pytest.mark.skipif(not TESSERACT, reason="tesseract binary not installed")),
    pytest.param("rapidocr", marks=pytest.mark.skipif(not has_rapidocr(), reason="rapidocr not installed")),
    pytest.param("combined", marks=pytest.mark.skipif(not (TESSERACT and has_rapidocr()),
                                                      reason="needs both tesseract and rapidocr")),
]
LINES = ["INVOICE 2231", "Total due 45.90", "Thank you for your order"]


def _words(result: OcrResult) -> str:
    return " ".join(result.text.split()).upper()


@pytest.mark.ocr
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("how", ["plain", "rotated", "blurred", "low-contrast", "small"])
def test_engines_read_generated_text(engine: str, how: str) -> None:
    img = text_image(LINES, size=44)
    if how == "rotated":
        img = img.rotate(4, expand=True, fillcolor="white")
    elif how == "blurred":
        img = img.filter(ImageFilter.GaussianBlur(1.0))
    elif how == "low-contrast":
        img = img.point(lambda v: 140 + v * 90 // 255)
    elif how == "small":
        img = img.resize((img.width // 3, img.height // 3), Image.LANCZOS)
    result = read(Frame.from_pil(img), engine=engine)
    text = _words(result)
    for expected in ("INVOICE 2231", "45.90", "THANK YOU"):
        assert expected in text, (how, result.text)
    assert len(result.lines) == 3
    assert all(0 <= w.confidence <= 1 for w in result)


@pytest.mark.skipif(not TESSERACT, reason="tesseract binary not installed")
def test_boxes_map_back_to_the_original_image() -> None:
    img = text_image(LINES, size=44).rotate(4, expand=True, fillcolor="white")
    result = read(Frame.from_pil(img), engine="tesseract")
    w, h = img.size
    for word in result:
        x0, y0, x1, y1 = word.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    gray = np.asarray(img.convert("L"))
    box = next(word.box for word in result if word.text.upper().startswith("INVOICE"))
    assert gray[box[1]:box[3], box[0]:box[2]].min() < 100, "the box holds ink"


def test_skew_estimate() -> None:
    img = text_image(["A line of text for the skew", "another line of text here", "and a third one"] * 3, size=30)
    for angle in (0.0, 3.0, -2.0):
        rotated = np.asarray(img.rotate(angle, expand=True, fillcolor="white").convert("L"))
        assert abs(estimate_skew(rotated) + angle) <= 0.6
    assert estimate_skew(np.full((200, 200), 255, np.uint8)) == 0.0


def test_prepare_upscales_small_text_and_keeps_big_text() -> None:
    small = Frame.from_pil(text_image(LINES, size=12))
    assert prepare(small).scale > 1.5
    big = Frame.from_pil(text_image(LINES, size=48))
    assert prepare(big).scale == 1.0
    assert prepare(big, Preprocess.none()).frame.size == big.size


def test_result_type() -> None:
    words = (OcrWord("Hello", (0, 0, 50, 20), 0.9, 0), OcrWord("world", (60, 0, 110, 20), 0.4, 0),
             OcrWord("again", (0, 30, 50, 50), 0.8, 1))
    r = OcrResult(words, "test", size=(200, 100))
    assert r.text == "Hello world\nagain"
    assert [ln.text for ln in r.lines] == ["Hello world", "again"]
    assert len(r.above(0.5)) == 2 and isinstance(r[1:], OcrResult) and r[0].text == "Hello"
    assert not OcrResult() and OcrResult().text == "" and OcrResult().confidence == 0.0
    d = r.to_dict()
    assert d["lines"][0]["text"] == "Hello world" and len(d["words"]) == 3


def test_respace() -> None:
    assert respace("TOTALEXCL.6%GST", "Total Excl.6% GSI") == "TOTAL EXCL.6% GST"
    assert respace("25/12/20188:13:39PM", "25/12/2018 8:13:39 PM") == "25/12/2018 8:13:39 PM"
    assert respace("ABCDEF", "something else entirely") == "ABCDEF", "no borrowing from unrelated text"


@pytest.mark.skipif(not TESSERACT, reason="tesseract binary not installed")
def test_tall_scan_is_read_in_strips() -> None:
    lines = [f"Item number {i} costs {i}.50" for i in range(60)]
    img = text_image(lines, size=40, width=700)
    assert img.height > 2.5 * img.width
    result = read(Frame.from_pil(img), engine="tesseract")
    texts = [ln.text for ln in result.lines]
    found = [i for i in range(60) if any(f"Item number {i} costs" in t for t in texts)]
    assert len(found) >= 57, texts
    assert len(texts) <= 62, "overlaps are read once"


def test_all_black_and_blank_images_give_an_empty_result() -> None:
    for fill in (0, 255):
        result = read(Frame.from_array(np.full((300, 400, 3), fill, np.uint8)))
        assert not result and result.warnings == ("no text found",)


def test_missing_tesseract_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(OcrError, match="apt install tesseract-ocr"):
        TesseractEngine()


@pytest.mark.skipif(not TESSERACT, reason="tesseract binary not installed")
def test_unsupported_language_names_the_package() -> None:
    with pytest.raises(OcrError, match="tesseract-ocr-xyz"):
        read(Frame.from_pil(text_image(LINES)), engine="tesseract", lang="xyz")


def test_unknown_engine() -> None:
    with pytest.raises(ValueError, match="unknown OCR engine"):
        _build("magic")


@pytest.mark.skipif(not TESSERACT, reason="tesseract binary not installed")
def test_overlay(tmp_path: Path) -> None:
    frame = Frame.from_pil(text_image(LINES))
    result = read(frame, engine="tesseract")
    out = save_overlay(frame, result, tmp_path / "overlay.png")
    with Image.open(out) as written:
        img = np.asarray(written.convert("RGB")).astype(int)
    assert img.shape[:2] == (frame.height, frame.width)
    coloured = np.abs(img[..., 0] - img[..., 1]) + np.abs(img[..., 1] - img[..., 2])
    assert (coloured > 60).sum() > 200, "boxes are drawn in colour"


# --- PDFs ------------------------------------------------------------------------------------------


def test_pdf_text_layer_is_used(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(text_pdf([["Lab report page one", "Glucose 5.4 mmol/L"], ["Page two", "Cholesterol 4.2"]]))
    result = read(pdf)
    assert result.engine == "pdf-text"
    expected = ["Lab report page one", "Glucose 5.4 mmol/L", "Page two", "Cholesterol 4.2"]
    assert [ln.text for ln in result.lines] == expected
    assert {w.page for w in result} == {0, 1}
    assert all(w.confidence == 1.0 for w in result)


@pytest.mark.skipif(not TESSERACT, reason="tesseract binary not installed")
def test_scanned_pdf_pages_are_ocrd(tmp_path: Path) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(image_pdf([text_image(LINES, size=40), text_image(["Second page 77.00"], size=40)]))
    pages = list(read_pages(pdf, engine="tesseract"))
    assert len(pages) == 2
    assert "45.90" in pages[0].text and "77.00" in pages[1].text
    assert {w.page for w in pages[1]} == {1}


def test_many_pages_are_streamed(tmp_path: Path) -> None:
    pdf = tmp_path / "big.pdf"
    pdf.write_bytes(text_pdf([[f"Page {i + 1} of 500", "Some text on the page"] for i in range(500)]))
    stream = read_pages(pdf)
    first = next(stream)
    assert first.text.startswith("Page 1 of 500")
    rest = list(stream)
    assert len(rest) == 499 and rest[-1].text.startswith("Page 500 of 500")


def test_corrupt_and_encrypted_pdfs(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pdf"
    corrupt.write_bytes(text_pdf([["hello"]])[:120])
    with pytest.raises(DocumentError, match="not a readable PDF"):
        read(corrupt)
    pikepdf = pytest.importorskip("pikepdf", reason="pikepdf (dev extra) makes the encrypted fixture")
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(text_pdf([["Secret result 42 units of something"]]))
    locked = tmp_path / "locked.pdf"
    with pikepdf.open(plain) as pdf:
        pdf.save(locked, encryption=pikepdf.Encryption(owner="owner-pw", user="user-pw", R=6))
    with pytest.raises(DocumentError, match="encrypted"):
        read(locked)
    with pytest.raises(DocumentError, match="password is wrong"):
        read(locked, password="nope")
    assert "Secret result 42" in read(locked, password="user-pw").text


def test_pdf_bad_page_number(tmp_path: Path) -> None:
    pdf = tmp_path / "one.pdf"
    pdf.write_bytes(text_pdf([["Only page with enough text in it"]]))
    with pytest.raises(DocumentError, match="no page 3"):
        read(pdf, pages=[2])


def test_engine_cache_returns_same_instance() -> None:
    if not TESSERACT:
        pytest.skip("tesseract binary not installed")
    assert get_engine("tesseract") is get_engine("tesseract")


def test_text_image_helper_draws_text() -> None:
    img = text_image(["x"], size=20)
    assert isinstance(ImageDraw.Draw(img), ImageDraw.ImageDraw) and ImageFont.load_default(size=10)


def test_prepare_shrinks_very_large_text_and_boxes_still_map_back() -> None:
    frame = Frame.from_pil(text_image(LINES, size=140))
    prepared = prepare(frame)
    assert prepared.scale < 0.8, "letters far taller than 40 px are shrunk"
    assert prepare(frame, Preprocess(downscale=False)).scale == 1.0
    w, h = frame.size
    x0, y0, x1, y1 = prepared.to_original((0, 0, prepared.frame.width, prepared.frame.height))
    assert abs(x1 - w) <= 2 and abs(y1 - h) <= 2 and (x0, y0) == (0, 0)


def test_rapidocr_text_fixes() -> None:
    from vision.ocr.rapid import fix_text

    assert fix_text("DOCUMENT NO：TD01（A）") == "DOCUMENT NO:TD01(A)", "full-width punctuation folded"
    assert fix_text("40300 SHAH ALAM 4030O 21/O7/2017 RMO.02") == "40300 SHAH ALAM 40300 21/07/2017 RM0.02"
    assert fix_text("GST N0: PH0NE c0sts") == "GST NO: PHONE costs", "the case of the word kept"
    for kept in ("SA0127959-D RM0.50 BOOK 100g", "Protein 1.0g", "MILK 2.0L 0mg Trans Fat 0g", "INV000",
                 "W10 0AA", "0W-40", "O2 Store"):
        assert fix_text(kept) == kept, "left alone"


@pytest.mark.skipif(not has_rapidocr(), reason="rapidocr not installed")
def test_rapidocr_runtimes_read_the_same_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from vision.ocr.rapid import RapidOcrPipeline, choose_runtime

    monkeypatch.setenv("VISION_OCR_RUNTIME", "tensorflow")
    with pytest.raises(OcrError, match="unknown OCR runtime 'tensorflow'"):
        choose_runtime()
    monkeypatch.setenv("VISION_OCR_RUNTIME", "onnxruntime")
    assert choose_runtime() == "onnxruntime"
    bgr = Frame.from_pil(text_image(LINES, size=40)).to_bgr()
    texts = {}
    for runtime in ("onnxruntime", "auto"):
        pipeline = RapidOcrPipeline(runtime=runtime)
        texts[pipeline.runtime] = sorted(text for _quad, text, _conf in pipeline(bgr))
    assert texts["onnxruntime"] == ["INVOICE 2231", "Thank you for your order", "Total due 45.90"]
    assert len({tuple(t) for t in texts.values()}) == 1, texts


@pytest.mark.skipif(not has_rapidocr(), reason="rapidocr not installed")
def test_rapidocr_falls_back_to_onnxruntime_when_openvino_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from vision.ocr import rapid

    real = rapid._Model

    def flaky(path: Path, *, runtime: str, threads: int) -> rapid._Model:
        if runtime == "openvino":
            raise RuntimeError("no CPU plugin")
        return real(path, runtime=runtime, threads=threads)

    monkeypatch.setattr(rapid, "_Model", flaky)
    monkeypatch.setattr(rapid, "choose_runtime", lambda name=None: "openvino")
    pipeline = rapid.RapidOcrPipeline()
    assert pipeline.runtime == "onnxruntime"
    bgr = Frame.from_pil(text_image(["Total due 45.90"], size=40)).to_bgr()
    assert [text for _q, text, _c in pipeline(bgr)] == ["Total due 45.90"]


@pytest.mark.skipif(not has_rapidocr(), reason="rapidocr not installed")
def test_rapidocr_spaces_short_tokens_and_odd_shapes() -> None:
    from vision.ocr.rapid import RapidOcrPipeline

    pipeline = RapidOcrPipeline()
    for line in ("1 x 2   A B C", "Tel 023 9200 1234", "TOTAL EXCL. GST 15.96", "Item 111 costs 111.50"):
        bgr = Frame.from_pil(text_image([line], size=40)).to_bgr()
        pieces = sorted(pipeline(bgr), key=lambda item: float(item[0][:, 0].min()))  # left to right
        assert " ".join(" ".join(text for _q, text, _c in pieces).split()) == " ".join(line.split())
    assert pipeline(np.zeros((0, 10, 3), np.uint8)) == [] and pipeline(np.full((2, 900, 3), 255, np.uint8)) == []
    strip = np.asarray(text_image(["Total due 45.90"], size=22, width=1500, pad=4).convert("RGB"))[:, :, ::-1]
    assert [text for _q, text, _c in pipeline(np.ascontiguousarray(strip))] == ["Total due 45.90"]


def test_text_height_of_small_print_on_a_large_page() -> None:
    from vision.ocr.preprocess import median_text_height

    page = np.full((3000, 6000), 255, np.uint8)
    lines = np.asarray(text_image(LINES * 4, size=24).convert("L"))
    page[: lines.shape[0], : lines.shape[1]] = lines
    full = median_text_height(page, max_side=10**6)
    assert abs(median_text_height(page) - full) <= 0.15 * full, "the reduced copy must not read small print as large"
