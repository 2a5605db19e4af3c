"""Serving the apps: where, for whom, how much at once. ``vision app`` and ``python -m apps`` call
:func:`launch`; each app module's ``__main__`` does too.

Defaults are the safe ones: this machine only (127.0.0.1), no public share link, uploads up to the
same size the library accepts for an image, and a bounded queue. API keys stay in the server's
environment: the page only ever sees model names and whether a provider is connected.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vision.config import get_config, is_loopback_url

from .common import ASSETS, CSS

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger("apps")

AUTH_ENV = "VISION_APP_AUTH"  # "user:password", when --auth is not given
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_FILE_SIZE = "50mb"
DEFAULT_CONCURRENCY = 4  # model requests at once (OCR has its own limit of 2)
DEFAULT_MAX_QUEUE = 64


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``user:password`` (or the ``VISION_APP_AUTH`` variable when ``value`` is None) to a pair."""
    if value is None:
        value = os.environ.get(AUTH_ENV) or None
        if value is None:
            return None
    user, sep, password = value.partition(":")
    if not sep or not user.strip() or not password:
        raise ValueError(f"--auth (or {AUTH_ENV}) must be user:password, with a user name and a password")
    return user.strip(), password


@dataclass(frozen=True)
class LaunchOptions:
    """How to serve the app."""

    host: str = DEFAULT_HOST
    port: int | None = None  # None: 7860, or the next free port
    auth: tuple[str, str] | None = None
    share: bool = False
    max_file_size: str | int = DEFAULT_MAX_FILE_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    max_queue: int = DEFAULT_MAX_QUEUE
    open_browser: bool = False

    def __post_init__(self) -> None:
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError(f"--port must be between 1 and 65535, got {self.port}")
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.max_queue < 1:
            raise ValueError(f"--max-queue must be at least 1, got {self.max_queue}")

    @property
    def exposed(self) -> bool:
        """Reachable from other machines (a non-loopback address, or a share link)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.share or not is_loopback_url(f"http://{host}/")


def prepare(demo: gr.Blocks, options: LaunchOptions) -> dict[str, object]:
    """Configure the queue of ``demo`` and return the keyword arguments for ``demo.launch``."""
    demo.queue(default_concurrency_limit=options.concurrency, max_size=options.max_queue)
    if options.exposed and options.auth is None:
        log.warning("the app is reachable from other machines without a password: add --auth user:password "
                    "(or set %s); whoever opens it can spend your API credit", AUTH_ENV)
    output_dir = Path(get_config().settings.output_dir).expanduser().resolve()
    return {
        "server_name": options.host,
        "server_port": options.port,
        "auth": options.auth,
        "auth_message": "vision-toolkit: sign in with the user name and password the app was started with.",
        "share": options.share,
        "max_file_size": options.max_file_size,
        "inbrowser": options.open_browser,
        "show_error": False,  # unexpected errors: a short message in the page, the details in the log
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        "enable_monitoring": False,
        "run_history": False,
        "footer_links": ["gradio", "settings"],
        "allowed_paths": [str(output_dir), str(ASSETS)],  # what Imagine made; the sample pictures
        "css": CSS,
    }


def launch(demo: gr.Blocks | None = None, options: LaunchOptions | None = None, *,
           prevent_thread_lock: bool = False) -> gr.Blocks:
    """Serve ``demo`` (default: the three-tab app) until interrupted (or in the background with
    ``prevent_thread_lock``); returns it."""
    if demo is None:
        from .app import demo
    options = options or LaunchOptions(auth=parse_auth(None))
    kwargs = prepare(demo, options)
    demo.launch(prevent_thread_lock=prevent_thread_lock, **kwargs)  # type: ignore[arg-type]
    return demo


__all__ = ["AUTH_ENV", "DEFAULT_HOST", "LaunchOptions", "launch", "parse_auth", "prepare"]
