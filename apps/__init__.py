"""The Gradio apps of vision-toolkit: thin shells over the ``vision`` library.

``apps.app.demo`` is the three-tab app that ``vision app`` and ``python -m apps`` serve;
``apps.point_and_ask``, ``apps.label_receipt`` and ``apps.imagine`` each have a ``demo`` of their own
and module-level handlers, so tests (and you) can import them and call the handlers directly.
Needs the ``apps`` extra: ``pip install 'vision-toolkit[apps]'``.
"""
