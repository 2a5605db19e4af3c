"""`vision extract DIR --jsonl OUT`: processes, resumable, a bad file reported without stopping the rest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vision.documents.batch import done_keys, expand_inputs, input_key, run_batch

from .conftest import ASSETS, TESSERACT, has_rapidocr

pytestmark = [pytest.mark.ocr, pytest.mark.skipif(not (TESSERACT or has_rapidocr()), reason="no OCR engine")]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "inbox"
    (d / "sub").mkdir(parents=True)
    shutil.copy(ASSETS / "receipt.png", d / "a-receipt.png")
    shutil.copy(ASSETS / "receipt.png", d / "sub" / "b-receipt.png")
    (d / "c-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (d / "notes.txt").write_text("not an image, not picked up")
    return d


def test_inputs_and_keys(folder: Path) -> None:
    files = [p.name for p in expand_inputs(str(folder))]
    assert files == ["a-receipt.png", "c-broken.jpg", "b-receipt.png"]
    assert [p.name for p in expand_inputs(str(folder / "*.png"))] == ["a-receipt.png"]
    a, b = folder / "a-receipt.png", folder / "sub" / "b-receipt.png"
    assert input_key(a).split("#")[1] == input_key(b).split("#")[1], "same bytes, same hash"


def test_batch_reports_the_bad_file_and_resumes(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    seen: list[str] = []
    report = run_batch(str(folder), out, kind="receipt", workers=2, progress=lambda d, t, p: seen.append(p))
    assert (report.done, report.failed, report.skipped) == (2, 1, 0)
    assert "c-broken.jpg" in report.failures[0][0] and "truncated" in report.failures[0][1]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    good = [r for r in records if "error" not in r]
    assert sorted(r["total"] for r in good) == ["15.96", "15.96"]
    assert len(seen) == 3
    again = run_batch(str(folder), out, kind="receipt", workers=2)
    assert (again.done, again.skipped, again.failed) == (0, 2, 1), "done files are skipped, failed ones retried"
    assert len(done_keys(out)) == 2


def test_a_line_cut_by_a_crash_is_redone(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    run_batch(str(folder / "a-receipt.png"), out, kind="receipt", workers=1)
    text = out.read_text()
    out.write_text(text[: len(text) // 2])  # the process died while writing
    again = run_batch(str(folder / "a-receipt.png"), out, kind="receipt", workers=1)
    assert again.done == 1


def test_cli_batch(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.jsonl"
    result = subprocess.run([sys.executable, "-m", "vision", "extract", str(folder), "--kind", "receipt",
                             "--jsonl", str(out), "--workers", "2"], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "2 extracted, 0 already done, 1 failed" in result.stderr
    assert "failed: " in result.stderr and "c-broken.jpg" in result.stderr
    missing = subprocess.run([sys.executable, "-m", "vision", "extract", str(folder)], capture_output=True,
                             text=True, timeout=60, check=False)
    assert missing.returncode == 2 and "--jsonl" in missing.stderr
