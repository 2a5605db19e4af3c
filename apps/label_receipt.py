"""Label & Receipt: read a receipt or a product label on this machine, correct it, then have it explained.

Step 1 runs here: OCR (:func:`vision.documents.extract`), the overlay with the words OCR doubted
shaded (:func:`vision.ocr.draw_overlay`), and the fields and checks in a table the person corrects
(:mod:`vision.documents.review`). Step 2 sends the picture and the *confirmed* transcription to a
model (:func:`vision.documents.explain.explain`), which cross-checks its own reading of the key
numbers. The result downloads as JSON and CSV.

Run it alone with ``python -m apps.label_receipt``; it is also the second tab of ``vision app``.
"""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from vision.documents import KINDS, Document, extract
from vision.documents.explain import ExplainResult, explain
from vision.documents.review import FieldRow, apply_rows, field_rows, to_csv
from vision.frame import Frame
from vision.ocr import available_engines, draw_overlay
from vision.ocr.pdf import is_pdf, iter_pages

from .common import TITLE, connect_hint, download_dir, model_dropdown, samples, shows_errors, usd

BEST_ENGINE = "best for the kind"
MAX_PAGES = 4  # pages shown as overlays and sent to the model
FIELD_HEADERS = ["Field", "Value", "Note"]
CHECK_HEADERS = ["Check", "Result", "Detail"]
FILE_TYPES = ["image", ".pdf", ".heic", ".heif", ".avif", ".webp", ".tif", ".tiff"]


@dataclass
class LabelState:
    """One browser session: what was read, the confirmed document, its explanation."""

    source: Any = None  # a file path (image or PDF) or a Frame from the camera
    name: str = "document"
    pages: list[Frame] = field(default_factory=list)  # the pictures the model sees
    document: Document | None = None
    explained: ExplainResult | None = None
    folder: Path | None = None


def engine_choices() -> list[str]:
    have = available_engines()
    return [BEST_ENGINE, *have, *(["combined"] if {"tesseract", "rapidocr"} <= set(have) else [])]


def _pictures(source: Any) -> tuple[list[Frame], bool]:
    """The pictures of ``source`` (a PDF's first pages, rendered) and whether it is a PDF."""
    if isinstance(source, Frame):
        return [source], False
    path = Path(source)
    with path.open("rb") as fh:
        head = fh.read(1024)
    if not is_pdf(head):
        return [Frame.load(path)], False
    frames = []
    with closing(iter_pages(path)) as pages:
        for page in pages:
            if page.index >= MAX_PAGES:
                break
            frames.append(page.render())
    return frames, True


def _check_rows(doc: Document) -> list[list[str]]:
    checks = sorted(doc.checks, key=lambda c: {False: 0, None: 1, True: 2}[c.passed])
    result = {True: "passed", False: "FAILED", None: "not checked"}
    return [[c.name, result[c.passed], c.detail] for c in checks]


def _summary(doc: Document) -> str:
    failed = doc.failed_checks
    passed = sum(1 for c in doc.checks if c.passed)
    kind = {"receipt": "Receipt", "nutrition": "Nutrition label", "generic": "Document"}.get(doc.kind, doc.kind)
    lines = [f"**{kind}** read with {doc.engine or 'the text layer'}: {passed} check(s) passed, "
             f"**{len(failed)} failed**." if failed else
             f"**{kind}** read with {doc.engine or 'the text layer'}: {passed} check(s) passed, none failed."]
    lines += [f"- FAILED {c.name}: {c.detail}" for c in failed]
    if doc.low_confidence:
        words = ", ".join(f"`{w.text}` ({w.confidence:.0%})" for w in doc.low_confidence[:12])
        lines.append(f"OCR was unsure of {len(doc.low_confidence)} word(s), shaded in the overlay: {words}")
    lines += [f"- warning: {w}" for w in doc.warnings]
    lines.append("Correct the table (and the transcription) where they differ from the picture, then "
                 "**Confirm** or **Explain**.")
    return "\n\n".join(lines)


def _files(state: LabelState) -> tuple[str, str]:
    """Write the JSON and CSV downloads; returns their paths."""
    assert state.document is not None
    state.folder = state.folder or download_dir()
    stem = Path(state.name).stem or "document"
    data: dict[str, Any] = {"document": state.document.to_json_dict()}
    if state.explained is not None:
        data["explanation"] = state.explained.model_dump(mode="json", exclude={"document"})
    json_path = state.folder / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    csv_path = state.folder / f"{stem}.csv"
    csv_path.write_text(to_csv(state.document), encoding="utf-8")
    return str(json_path), str(csv_path)


def _document_outputs(state: LabelState) -> tuple[Any, ...]:
    doc = state.document
    assert doc is not None
    rows = [[r.path, r.value, r.note] for r in field_rows(doc)]
    json_path, csv_path = _files(state)
    return (rows, _check_rows(doc), doc.transcription, _summary(doc),
            gr.DownloadButton(value=json_path, interactive=True), gr.DownloadButton(value=csv_path, interactive=True))


# -- handlers ---------------------------------------------------------------------------------------------


@shows_errors
def read(upload: str | None, kind: str, engine: str, state: LabelState) -> tuple[Any, ...]:
    """Step 1: read the uploaded (or photographed) document; returns overlays, fields, checks, transcription,
    summary, the two downloads and the (cleared) explanation."""
    source = upload if upload else state.source
    if source is None:
        raise ValueError("Upload a photo or PDF of a receipt or label, or take a photo with the camera.")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    state.source = source
    state.name = Path(source).name if isinstance(source, str) else "camera.jpg"
    state.explained = None
    state.pages, pdf = _pictures(source)
    # an image is decoded once, here, and read from that frame; a PDF is read from the file (its text
    # layer), and its overlays drawn on the pages already rendered (the reader's dpi)
    doc = extract(source if pdf else state.pages[0], kind=kind,
                  engine=None if engine in (None, "", BEST_ENGINE) else engine)
    state.document = doc
    overlays = []
    if doc.ocr is not None:
        images = [draw_overlay(p, doc.ocr, page=i if pdf else None) for i, p in enumerate(state.pages)]
        overlays = [(img, f"page {i + 1}" if len(images) > 1 else "what OCR read") for i, img in enumerate(images)]
    return (overlays, *_document_outputs(state), "")


def on_upload(upload: str | None, kind: str, engine: str, state: LabelState) -> tuple[Any, ...]:
    """A file was uploaded (or a sample chosen): read it. Clearing the box changes nothing."""
    if not upload:
        return tuple(gr.skip() for _ in range(8))
    return read(upload, kind, engine, state)


def read_again(kind: str, engine: str, state: LabelState) -> tuple[Any, ...]:
    """Read the last document again (another kind or engine)."""
    return read(None, kind, engine, state)


@shows_errors
def read_camera(image: np.ndarray | None, kind: str, engine: str, state: LabelState) -> tuple[Any, ...]:
    """A photo from the webcam: read it like an upload."""
    if image is None:
        return tuple(gr.skip() for _ in range(8))
    state.source = Frame.from_array(image, source="camera")
    return read(None, kind, engine, state)


def _confirm(rows: Any, transcription: str | None, state: LabelState) -> Document:
    if state.document is None:
        raise ValueError("Read a receipt or label first.")
    table = rows if isinstance(rows, list) else []
    fields = [FieldRow(str(r[0] or ""), "" if r[1] is None else str(r[1])) for r in table if r and len(r) >= 2]
    doc = apply_rows(state.document, fields)
    if transcription is not None and transcription.strip():
        doc.transcription = transcription.strip()
    if doc.model_dump() != state.document.model_dump():
        state.explained = None  # an explanation of the old reading no longer applies
    state.document = doc
    return doc


@shows_errors
def confirm(rows: Any, transcription: str, state: LabelState) -> tuple[Any, ...]:
    """The person's corrections: rebuild the document from the table, check it again."""
    _confirm(rows, transcription, state)
    return _document_outputs(state)


@shows_errors
def explain_document(rows: Any, transcription: str, model: str, state: LabelState) -> tuple[Any, ...]:
    """Step 2: send the picture(s) and the confirmed transcription to the model."""
    doc = _confirm(rows, transcription, state)
    pictures: Any = state.pages if len(state.pages) > 1 else state.pages[0]
    result = explain(pictures, doc, model=(model or "").strip() or None)
    state.explained = result
    return (_explanation_text(result), *_document_outputs(state))


def _explanation_text(result: ExplainResult) -> str:
    lines: list[str] = []
    e = result.explanation
    if e is not None:
        lines.append(e.summary)
        lines += [f"- **{p.name}**: {p.explanation}" for p in e.parts]
        lines += [f"- ⚠ {c}" for c in e.cautions]
    else:
        lines.append(result.answer.strip())
    lines += [f"**Disagreement** on {d.field}: OCR read `{d.ocr}`, the model read `{d.model}`"
              for d in result.disagreements]
    lines += [f"*note: {n}*" for n in result.notes]
    cost = result.usage.get("cost_usd", 0.0)
    lines.append(f"*{result.model} · {usd(cost)} · {result.latency_ms / 1000:.1f} s*")
    return "\n\n".join(lines)


# -- the page ---------------------------------------------------------------------------------------------


def render() -> None:
    """Build the tab's components and events inside the current ``gr.Blocks``."""
    state = gr.State(lambda: LabelState())  # a fresh one per browser session
    connect_hint()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            with gr.Tabs():
                with gr.Tab("Upload"):
                    upload = gr.File(label="Receipt or label (image or PDF)", file_types=FILE_TYPES,
                                     type="filepath", elem_id="lr-upload")
                    if examples := samples("receipt.png", "nutrition_label.png"):
                        gr.Examples(examples, inputs=upload, label="Or try a sample")
                with gr.Tab("Camera"):
                    camera = gr.Image(sources=["webcam"], type="numpy", label="Take a photo",
                                      webcam_options=gr.WebcamOptions(mirror=False), elem_id="lr-camera")
            with gr.Row():
                kind = gr.Radio(list(KINDS), value="auto", label="Kind", elem_id="lr-kind")
                engine = gr.Dropdown(engine_choices(), value=BEST_ENGINE, label="OCR engine")
            read_btn = gr.Button("Read again", elem_id="lr-read")
            overlay = gr.Gallery(label="What OCR read (shaded: words it doubted)", columns=1, height=520,
                                 object_fit="contain", elem_id="lr-overlay")
        with gr.Column(scale=1):
            summary = gr.Markdown("Upload a receipt or a label: it is read on this machine first; nothing is "
                                  "sent anywhere until you press **Explain**.", elem_id="lr-summary")
            fields = gr.Dataframe(headers=FIELD_HEADERS, datatype=["str", "str", "str"], type="array",
                                  interactive=True, static_columns=[2], wrap=True, max_height=420,
                                  column_widths=["34%", "38%", "28%"],
                                  label="Fields (edit the values; add a row to add a field)", elem_id="lr-fields")
            checks = gr.Dataframe(headers=CHECK_HEADERS, type="array", interactive=False, wrap=True,
                                  column_widths=["22%", "14%", "64%"],
                                  label="Checks", elem_id="lr-checks")
            with gr.Accordion("Transcription (what the model will be given)", open=False):
                transcription = gr.Textbox(lines=10, show_label=False, elem_id="lr-transcription")
            with gr.Row():
                confirm_btn = gr.Button("Confirm corrections", elem_id="lr-confirm")
                json_btn = gr.DownloadButton("JSON", interactive=False, elem_id="lr-json")
                csv_btn = gr.DownloadButton("CSV", interactive=False, elem_id="lr-csv")
            model = model_dropdown(council=False, elem_id="lr-model")
            explain_btn = gr.Button("Explain", variant="primary", elem_id="lr-explain")
            explanation = gr.Markdown("", line_breaks=True, elem_id="lr-explanation")

    doc_outputs = [fields, checks, transcription, summary, json_btn, csv_btn]
    read_outputs = [overlay, *doc_outputs, explanation]
    ocr = {"concurrency_limit": 2, "concurrency_id": "ocr"}  # OCR is CPU-bound
    upload.change(on_upload, [upload, kind, engine, state], read_outputs, **ocr)
    read_btn.click(read_again, [kind, engine, state], read_outputs, **ocr)
    camera.change(read_camera, [camera, kind, engine, state], read_outputs, **ocr)
    confirm_btn.click(confirm, [fields, transcription, state], doc_outputs)
    explain_btn.click(explain_document, [fields, transcription, model, state], [explanation, *doc_outputs])


with gr.Blocks(title=f"Label & Receipt · {TITLE}", analytics_enabled=False, delete_cache=(86400, 86400)) as demo:
    gr.Markdown("## Label & Receipt")
    render()


if __name__ == "__main__":
    from .launch import launch

    launch(demo)
