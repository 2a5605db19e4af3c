"""What the three tabs share: errors shown as messages, the model picker, money, the connect hint.

Nothing here decides anything about pictures or models: that is the library's job (``vision``).
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from vision.config import get_config
from vision.council import default_members
from vision.errors import MissingApiKeyError, VisionError
from vision.providers.registry import model_choices

log = logging.getLogger("apps")

F = TypeVar("F", bound=Callable[..., Any])

COUNCIL = "council"  # the model picker's choice for the vision council
TITLE = "vision-toolkit"
CSS = """
.vt-cost { font-size: 0.9em; opacity: 0.85; }
.vt-hint { border-left: 3px solid var(--color-accent); padding-left: 0.6em; }
"""
CONNECT_HINT = (
    "No vision model is connected, so answers come from the **local engine**: OCR, barcodes, faces and "
    "colours read on this machine, not a language model. To connect one, set a key in the environment you "
    "start the app from and restart it: `OPENAI_API_KEY`, `GEMINI_API_KEY`, `ANTHROPIC_API_KEY`, "
    "`OPENROUTER_API_KEY` or `REPLICATE_API_TOKEN`; or point `OLLAMA_BASE_URL` at an Ollama server. "
    "`vision models` lists every provider."
)


# -- errors ---------------------------------------------------------------------------------------------


def page_message(exc: BaseException) -> str:
    """What the page says about ``exc``: the toolkit's own message (keys are never in it), or a short
    note for a bug (whose details go to the server log, never to the page)."""
    if isinstance(exc, MissingApiKeyError):
        return (f"{exc.provider} needs an API key: set {exc.env_var} in the environment the app is started from, "
                "then restart the app.")
    if isinstance(exc, (VisionError, ValueError)):
        return str(exc)
    return f"Something went wrong ({type(exc).__name__}); the details are in the app's log."


def to_page_error(exc: BaseException) -> gr.Error:
    """A ``gr.Error`` for ``exc`` (message escaped: it may quote text read from a picture)."""
    expected = isinstance(exc, (VisionError, ValueError))
    if expected:
        log.info("shown in the page: %s: %s", type(exc).__name__, exc)
    else:
        log.error("unexpected error in a handler", exc_info=exc)
    return gr.Error(html.escape(page_message(exc), quote=False), print_exception=False)


def shows_errors(fn: F) -> F:
    """Handlers raise the toolkit's errors; the page shows them as messages, never as tracebacks."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from fn(*args, **kwargs))
            except gr.Error:
                raise
            except Exception as exc:
                raise to_page_error(exc) from None

        return gen_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            raise to_page_error(exc) from None

    return wrapper  # type: ignore[return-value]


# -- models ---------------------------------------------------------------------------------------------


def model_picker_choices(*, council: bool = True) -> list[str]:
    """The connected models (``local`` always), and the council when at least two models can sit on it."""
    choices = model_choices()
    if council and default_members():
        choices.append(COUNCIL)
    return choices


def council_label() -> str:
    members = default_members()
    if not members:
        return "The council needs two connected models."
    return "council = " + ", ".join(members) + " (they answer, rank each other anonymously, one writes the synthesis)"


def model_dropdown(*, council: bool = True, label: str = "Model", elem_id: str | None = None) -> gr.Dropdown:
    """The model picker: every connected model, ``local`` always, the council; any provider/model may be typed."""
    choices = model_picker_choices(council=council)
    default = get_config().settings.default_model
    value = default if default in choices else choices[0]
    info = "Connected models; type any provider/model, e.g. ollama/llava."
    if council and COUNCIL in choices:
        info += " " + council_label() + "."
    return gr.Dropdown(choices=choices, value=value, label=label, allow_custom_value=True, info=info, elem_id=elem_id)


def only_local() -> bool:
    return model_choices() == ["local"]


def connect_hint() -> gr.Markdown:
    """The note on how to connect a model, shown while only the local engine is available."""
    return gr.Markdown(CONNECT_HINT, visible=only_local(), elem_classes=["vt-hint"])


# -- money and files -----------------------------------------------------------------------------------


def usd(value: float | None) -> str:
    if value is None:
        return "an unknown amount (no price in the model table)"
    if value == 0:
        return "free"
    return f"${value:.5f}" if value < 0.01 else f"${value:.4f}"


ASSETS = Path(__file__).resolve().parent.parent / "assets"  # the sample pictures, in a checkout


def samples(*names: str) -> list[list[str]]:
    """Sample pictures from ``assets/`` for ``gr.Examples`` (none when the app is installed without them)."""
    return [[str(ASSETS / n)] for n in names if (ASSETS / n).is_file()]


def download_dir() -> Path:
    """A private folder for files the page offers for download (gradio serves the temp dir)."""
    return Path(tempfile.mkdtemp(prefix="vision-app-"))


__all__ = [
    "ASSETS",
    "CONNECT_HINT",
    "COUNCIL",
    "CSS",
    "TITLE",
    "connect_hint",
    "council_label",
    "download_dir",
    "model_dropdown",
    "model_picker_choices",
    "only_local",
    "page_message",
    "samples",
    "shows_errors",
    "to_page_error",
    "usd",
]
