"""The vision-toolkit app: Point & Ask, Label & Receipt and Imagine, one tab each.

``vision app`` (or ``python -m apps``) serves it; each tab is also a module of its own with a
``demo`` (``apps.point_and_ask``, ``apps.label_receipt``, ``apps.imagine``).
"""

from __future__ import annotations

import gradio as gr

from vision import __version__

from . import imagine, label_receipt, point_and_ask
from .common import TITLE

INTRO = (f"# {TITLE} <small>{__version__}</small>\n"
         "Point a camera or a photo at something and ask about it; read and explain a receipt or a label; "
         "turn a caption into pictures and a video. Everything says what it costs before it is sent.")

with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(86400, 86400)) as demo:
    gr.Markdown(INTRO)
    with gr.Tabs():
        with gr.Tab("Point & Ask", id="point-and-ask"):
            point_and_ask.render()
        with gr.Tab("Label & Receipt", id="label-and-receipt"):
            label_receipt.render()
        with gr.Tab("Imagine", id="imagine"):
            imagine.render()


if __name__ == "__main__":
    from .launch import launch

    launch(demo)
