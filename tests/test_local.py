"""The embedded `local` engine: what the machine can see for itself, stated as such."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from vision.errors import OcrError
from vision.frame import Frame
from vision.providers import get_model
from vision.providers import local as local_mod

from .conftest import ASSETS, TESSERACT, has_rapidocr

needs_ocr = pytest.mark.skipif(not (TESSERACT or has_rapidocr()),
                               reason="no OCR engine: install tesseract-ocr or the 'ocr' extra")


def cover(title: str, author: str) -> Frame:
    img = Image.new("RGB", (900, 1200), (20, 30, 70))
    d = ImageDraw.Draw(img)
    d.text((80, 300), title, font=ImageFont.load_default(size=110), fill="white")
    d.text((80, 520), author, font=ImageFont.load_default(size=44), fill=(240, 220, 150))
    d.text((80, 1100), "small print at the bottom", font=ImageFont.load_default(size=22), fill="white")
    return Frame.from_pil(img, source="cover.png")


@needs_ocr
@pytest.mark.ocr
def test_title_is_the_most_prominent_line() -> None:
    answer = get_model("local").ask("What is the title and author of this book?", [cover("MOONRISE", "by Ada Lane")])
    assert 'Likely title (the most prominent text): "MOONRISE"' in answer.text
    assert "by Ada Lane" in answer.text
    assert answer.text.index("Likely title") < answer.text.index("Faces"), "the asked-about part comes first"
    findings = answer.raw["findings"][0]
    assert findings["title"] == "MOONRISE"


@needs_ocr
@pytest.mark.ocr
def test_sample_assets() -> None:
    model = get_model("local")
    book = model.ask("who wrote this?", [Frame.from_path(ASSETS / "book_photo.jpg")])
    assert '"THE QUIET ORCHARD"' in book.text and "Mara Ellison" in book.text
    label = model.ask("read the label", [Frame.from_path(ASSETS / "nutrition_label.png")])
    assert "Nutrition Facts" in label.raw["findings"][0]["title"]
    assert {"type": "UPC_A", "data": "012345678905"} in label.raw["findings"][0]["codes"]


def test_it_says_what_it_is_and_how_to_connect_a_model() -> None:
    answer = get_model("local").ask("what is this?", [Frame.from_array(np.full((64, 64, 3), 128, np.uint8))])
    assert answer.text.startswith("Local engine (not a language model)")
    assert "OPENAI_API_KEY" in answer.text and "ollama" in answer.text
    assert answer.usage.cost_usd == 0.0 and answer.usage.input_tokens == 0


def test_qr_code() -> None:
    qr = cv2.QRCodeEncoder.create().encode("https://example.org/vision")
    canvas = np.full((400, 400), 255, np.uint8)
    canvas[50:350, 50:350] = cv2.resize(qr, (300, 300), interpolation=cv2.INTER_NEAREST)
    answer = get_model("local").ask("what does the qr code say?", [Frame.from_array(canvas)])
    assert answer.text.splitlines()[1] == 'Codes: QR "https://example.org/vision"'


def test_all_black_image() -> None:
    answer = get_model("local").ask("is it too dark?", [Frame.from_array(np.zeros((300, 400, 3), np.uint8))])
    found = answer.raw["findings"][0]
    assert found["exposure"] == "too dark"
    assert found["text_lines"] == [] and found["title"] is None
    assert "exposure too dark" in answer.text.splitlines()[1]


def test_colours() -> None:
    arr = np.zeros((100, 100, 3), np.uint8)
    arr[:, :70] = (200, 30, 30)
    arr[:, 70:] = (255, 255, 255)
    names = [n for n, _ in local_mod.dominant_colours(Frame.from_array(arr))]
    assert names[0] == "red" and "white" in names


def test_missing_ocr_keeps_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ocr(*_a: object, **_k: object) -> None:
        raise OcrError("no OCR engine is available")

    monkeypatch.setattr("vision.ocr.read_text", no_ocr)
    local_mod._ANALYSE_CACHE.clear()
    answer = get_model("local").ask("read it", [Frame.from_array(np.full((80, 80, 3), 90, np.uint8))])
    assert "Text: not read (no OCR engine is available)" in answer.text
    assert "Main colours" in answer.text


def test_no_image() -> None:
    answer = get_model("local").ask("hello?")
    assert "there is no image" in answer.text


def test_several_images() -> None:
    frames = [Frame.from_array(np.full((60, 60, 3), v, np.uint8), source=f"img{v}") for v in (10, 240)]
    answer = get_model("local").ask("compare", frames)
    assert "Image 1 (img10)" in answer.text and "Image 2 (img240)" in answer.text
