"""The notebooks run, top to bottom, against vision.testing, so they cannot drift; and they are kept in
git without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vision.testing import FakeServer

from .conftest import ROOT, TESSERACT, has_rapidocr

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat and nbclient (the dev extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbformat and nbclient (the dev extra)")

NOTEBOOKS = ROOT / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
needs_ocr = pytest.mark.skipif(not (TESSERACT or has_rapidocr()), reason="no OCR engine installed")


def run(path: Path) -> str:
    """Execute a copy of the notebook in a fresh kernel; returns all its text output."""
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(book, timeout=300, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    out = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            out.append(output.get("text", "") or json.dumps(output.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


@pytest.fixture
def notebook_env(fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """The kernel inherits this environment: the fake server, private data and output folders."""
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("VISION_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("OMP_THREAD_LIMIT", "1")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    monkeypatch.setenv("REPLICATE_BASE_URL", fake.replicate_base_url)
    return fake


def test_there_are_notebooks_for_each_walk_through() -> None:
    assert [p.name for p in ALL] == ["01_point_and_ask.ipynb", "02_label_and_receipt.ipynb",
                                     "03_caption_to_image_to_video.ipynb"]


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_notebooks_are_kept_without_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), \
        f"clear the outputs of {path.name} before committing (Jupyter: Edit > Clear All Outputs)"
    assert all("def " not in c.source and "class " not in c.source for c in code), "notebooks define no logic"


@pytest.mark.slow
@needs_ocr
@pytest.mark.parametrize("model", ["local", "openai/gpt-4.1-mini"])
def test_point_and_ask_notebook(model: str, notebook_env: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_MODEL", model)
    text = run(NOTEBOOKS / "01_point_and_ask.ipynb")
    assert f"model: {model}" in text
    if model == "local":
        assert 'Likely title (the most prominent text): "THE QUIET ORCHARD"' in text
    else:
        asked = notebook_env.requests_for("openai")
        assert any(r.json.get("stream") for r in asked) and "What is the title of this book?" in asked[0].text
    assert "scene 3" in text


@pytest.mark.slow
@needs_ocr
@pytest.mark.parametrize("model", ["local", "openai/gpt-4.1-mini"])
def test_label_and_receipt_notebook(model: str, notebook_env: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_MODEL", model)
    text = run(NOTEBOOKS / "02_label_and_receipt.ipynb")
    assert "GREENLEAF MARKET 2025-03-14 GBP 15.96" in text and "Greenleaf Market, Harbour Road" in text
    if model != "local":
        assert any("Greenleaf Market, Harbour Road" in r.text for r in notebook_env.requests_for("openai"))


@pytest.mark.slow
def test_caption_to_image_to_video_notebook(notebook_env: FakeServer) -> None:
    text = run(NOTEBOOKS / "03_caption_to_image_to_video.ipynb")
    assert "generators: the fake server" not in text  # CI points it at vision.testing itself
    assert "edited: True" in text and "video prompt:" in text and "made from:" in text
    assert any(r.api == "replicate" for r in notebook_env.requests)


@pytest.mark.slow
def test_caption_notebook_starts_its_own_fake_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("VISION_OUTPUT_DIR", str(tmp_path / "outputs"))
    text = run(NOTEBOOKS / "03_caption_to_image_to_video.ipynb")
    assert "generators: the fake server" in text and "made from:" in text
    assert len(list((tmp_path / "outputs").glob("*.json"))) == 2  # a picture and a video, each with provenance
