"""The ``vision`` command line: a thin shell over the library.

Errors the user can fix come out as one line on stderr (``error: ...``) and a non-zero exit code,
never a traceback (``-v`` shows the cause). Heavy modules are imported inside the commands, so
``vision --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="vision",
    help="Point a camera or a photo at something and ask about it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
history_app = typer.Typer(help="List, show and clear the log of past asks.", no_args_is_help=False)
app.add_typer(history_app, name="history")

log = logging.getLogger("vision")


# -- shared plumbing ------------------------------------------------------------------------------


def _err(message: str) -> None:
    sys.stderr.write(message.rstrip() + "\n")
    sys.stderr.flush()


def cli_errors(fn: F) -> F:
    """Turn the toolkit's errors into one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import VisionError

        try:
            return fn(*args, **kwargs)
        except VisionError as exc:
            log.debug("failed", exc_info=True)
            _err(f"error: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except ValueError as exc:
            log.debug("failed", exc_info=True)
            _err(f"error: {exc}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            _err("interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            raise typer.Exit(0) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from . import __version__

        sys.stdout.write(f"vision-toolkit {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging (-vv for debug).")] = 0,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "httpx2", "openai", "replicate"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _looks_like_image(arg: str) -> bool:
    return arg == "-" or arg.startswith(("http://", "https://", "data:")) or Path(arg).expanduser().exists()


def _split_images_and_question(args: list[str]) -> tuple[list[str], str | None]:
    """``IMAGE... [QUESTION]``: the last argument is the question unless it names an image."""
    if not args:
        raise ValueError("give at least one image (a path, an http(s) URL, or - for stdin)")
    if len(args) > 1 and not _looks_like_image(args[-1]):
        return args[:-1], args[-1]
    if len(args) == 1 and not _looks_like_image(args[0]) and " " in args[0]:
        raise ValueError(f"no image given, only a question ({args[0]!r}); put the image path first")
    return args, None


def _load_inputs(images: list[str]) -> list[Any]:
    out: list[Any] = []
    for img in images:
        if img == "-":
            data = sys.stdin.buffer.read()
            out.append(data)
        else:
            out.append(img)
    return out


def _footer(answer: Any) -> str:
    u = answer.usage
    cost = "free" if u.cost_usd == 0 else ("cost unknown" if u.cost_usd is None else f"${u.cost_usd:.5f}")
    cached = " · from cache" if answer.cached else ""
    tokens = f" · {u.input_tokens} in / {u.output_tokens} out tokens" if u.input_tokens or u.output_tokens else ""
    return f"[{answer.model}{tokens} · {cost} · {answer.latency_ms / 1000:.2f} s{cached}]"


def _elide_request(request: dict[str, Any]) -> dict[str, Any]:
    """The request with image data URLs shortened, for printing."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and value.startswith("data:") and len(value) > 80:
            head = value.split(",", 1)[0]
            return f"{head},<{len(value) - len(head) - 1} base64 chars>"
        return value

    return walk(request)  # type: ignore[no-any-return]


# -- ask --------------------------------------------------------------------------------------------

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="provider/model or an alias (default: local).")]
SystemOpt = Annotated[str | None, typer.Option("--system", help="Custom instructions applied to every ask.")]
PresetOpt = Annotated[
    str | None, typer.Option("--preset", "-p", help="A named preset: identify, label, book, text, describe.")
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="Model option key=value (temperature, max_output_tokens, "
                 "reasoning_effort, detail, seed, timeout). Repeatable."),
]


@app.command()
@cli_errors
def ask(
    args: Annotated[list[str], typer.Argument(
        help="IMAGE... [QUESTION]: images (paths, URLs, - for stdin), then the question.")],
    model: ModelOpt = None,
    stream: Annotated[bool, typer.Option("--stream", "-s", help="Print the answer as it arrives.")] = False,
    system: SystemOpt = None,
    preset: PresetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead of text.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the request plan and cost estimate; send nothing.")] = False,
    save_payload: Annotated[Path | None, typer.Option(
        "--save-payload", help="Write the exact image bytes (and the request) that would be sent to DIR.")] = None,
    option: OptionOpt = None,
    cache: Annotated[bool | None, typer.Option(
        "--cache/--no-cache", help="Use the answer cache (default: config).")] = None,
    no_history: Annotated[bool, typer.Option("--no-history", help="Do not log this ask.")] = False,
) -> None:
    """Ask a question about one or more images."""
    from .chat import Conversation
    from .providers.base import Options

    images, question = _split_images_and_question(args)
    options = Options.parse(option or [])
    chat = Conversation(_load_inputs(images), model=model, system=system, preset=preset, options=options,
                        history=False if no_history else None, cache=cache)
    if dry_run or save_payload:
        q = chat._question(question)
        kept, plan = chat.model.plan(chat.messages(q), chat._options({}))
        request = _request_preview(chat.model, kept, plan, chat._options({}))
        if save_payload:
            _save_payload(save_payload, plan, request)
        if dry_run:
            if as_json:
                _print_json({"dry_run": True, "plan": plan.to_dict(), "request": _elide_request(request)})
            else:
                _print_plan(plan)
            return
    if stream and not as_json:
        answer_stream = chat.stream(question)
        for delta in answer_stream:
            sys.stdout.write(delta)
            sys.stdout.flush()
        sys.stdout.write("\n")
        answer = answer_stream.answer
        assert answer is not None
        _err(_footer(answer))
        return
    answer = chat.ask(question)
    if as_json:
        _print_json(answer.to_dict())
    else:
        sys.stdout.write(answer.text.rstrip() + "\n")
        _err(_footer(answer))


def _request_preview(model: Any, kept: Any, plan: Any, options: Any) -> dict[str, Any]:
    build = getattr(model, "build_request", None) or getattr(model, "build_input", None)
    if build is None:
        return {"engine": "local", "note": "the local engine sends nothing over the network"}
    return build(kept, plan, options)  # type: ignore[no-any-return]


def _save_payload(directory: Path, plan: Any, request: dict[str, Any]) -> None:
    from .util import atomic_write_bytes, atomic_write_text

    directory.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(plan.images, 1):
        atomic_write_bytes(directory / f"image-{i}.jpg", img.data)
    atomic_write_text(directory / "request.json", json.dumps(_elide_request(request), indent=2))
    atomic_write_text(directory / "plan.json", json.dumps(plan.to_dict(), indent=2))
    _err(f"saved {len(plan.images)} image(s), request.json and plan.json to {directory}")


def _print_plan(plan: Any) -> None:
    out = [f"model: {plan.model}"]
    for i, img in enumerate(plan.images, 1):
        sw, sh = img.source_size
        out.append(f"image {i}: {img.source} {sw}x{sh} -> sent {img.width}x{img.height} JPEG, "
                   f"{len(img.data) / 1024:.1f} KiB, detail {img.detail or '-'}, ~{img.tokens} image tokens")
    out.append(f"input tokens (estimate): {plan.input_tokens} ({plan.image_tokens} image + ~{plan.text_tokens} text)")
    if plan.free:
        out.append("cost: free")
    elif plan.input_cost_usd is None:
        extra = f" (billed by time: ${plan.usd_per_second}/s)" if plan.usd_per_second else ""
        out.append(f"cost: unknown: no price for this model in the model table{extra}")
    else:
        out.append(f"cost (estimate): ${plan.input_cost_usd:.5f} input, at most ${plan.max_cost_usd:.5f} "
                   f"with a {plan.max_output_tokens}-token answer")
    if plan.dropped_turns:
        out.append(f"dropped {plan.dropped_turns} old turn(s) to fit the context window")
    sys.stdout.write("\n".join(out) + "\n")


# -- chat -------------------------------------------------------------------------------------------


@app.command()
@cli_errors
def chat(
    images: Annotated[list[str], typer.Argument(help="Images to talk about (paths, URLs).")],
    model: ModelOpt = None,
    system: SystemOpt = None,
    preset: PresetOpt = None,
    option: OptionOpt = None,
    no_history: Annotated[bool, typer.Option("--no-history", help="Do not log these asks.")] = False,
) -> None:
    """Ask questions and follow-ups about the same image(s). /new starts over, /quit (or Ctrl-D) ends."""
    from .chat import Conversation
    from .errors import ProviderError
    from .providers.base import Options

    conv = Conversation(images, model=model, system=system, preset=preset, options=Options.parse(option or []),
                        history=False if no_history else None)
    interactive = sys.stdin.isatty()
    _err(f"chatting with {conv.model.name} about {len(conv.frames)} image(s); /new, /cost, /quit")
    while True:
        if interactive:
            sys.stdout.write("you> ")
            sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            break
        question = line.strip()
        if not question:
            continue
        if question in {"/quit", "/exit"}:
            break
        if question == "/new":
            conv.reset()
            _err("(new chat)")
            continue
        if question == "/cost":
            cost = conv.usage.cost_usd
            _err(f"(so far: {conv.usage.input_tokens} in / {conv.usage.output_tokens} out tokens, "
                 f"{'cost unknown' if cost is None else f'${cost:.5f}'})")
            continue
        try:
            streamed = conv.stream(question)
            for delta in streamed:
                sys.stdout.write(delta)
                sys.stdout.flush()
            sys.stdout.write("\n")
            if streamed.answer:
                _err(_footer(streamed.answer))
        except ProviderError as exc:  # keep the chat going after a failed turn
            _err(f"error: {exc}")


# -- models -----------------------------------------------------------------------------------------


@app.command()
@cli_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    paths: Annotated[bool, typer.Option("--paths", help="Show the config file, history and cache locations.")] = False,
) -> None:
    """Providers, whether their key is set (never the key), aliases and presets."""
    from .config import get_config
    from .providers.registry import describe_providers

    config = get_config()
    data = {
        "default_model": config.settings.default_model,
        "providers": describe_providers(config),
        "aliases": config.aliases,
        "presets": {name: p.description for name, p in sorted(config.presets.items())},
        "paths": {"config": config.config_path, "data_dir": str(config.data_dir),
                  "history": str(config.history_path), "cache": str(config.cache_path)},
    }
    if as_json:
        _print_json(data)
        return
    lines = [f"default model: {data['default_model']}", "", "providers:"]
    for p in data["providers"]:
        if p["key_env"]:
            key = f"{p['key_env']} {'set' if p['key_set'] else 'not set'}"
            if not p["key_required"]:
                key += " (optional here)"
        else:
            key = "no key needed"
        state = "ready" if p["ready"] else "needs key"
        where = p["base_url"] or "on this machine"
        lines.append(f"  {p['example']:<22} {state:<10} {key:<36} {where}")
    lines += ["", "aliases:"] + [f"  {k:<10} -> {v}" for k, v in sorted(data["aliases"].items())]
    lines += ["", "presets:"] + [f"  {k:<10} {v}" for k, v in data["presets"].items()]
    if paths:
        lines += ["", "paths:"] + [f"  {k:<9} {v}" for k, v in data["paths"].items()]
    sys.stdout.write("\n".join(lines) + "\n")


# -- history ----------------------------------------------------------------------------------------


@history_app.callback(invoke_without_command=True)
@cli_errors
def history_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many entries.")] = 20,
    search: Annotated[str | None, typer.Option(
        "--search", help="Only entries whose prompt or answer contains this.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List recent asks, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from .config import get_config
    from .history import History

    entries = History(get_config().history_path).list(limit=limit, search=search)
    if as_json:
        _print_json([e.to_dict() for e in entries])
        return
    if not entries:
        sys.stdout.write("no history yet\n")
        return
    for e in entries:
        when = e.to_dict()["created_at_iso"].replace("T", " ")
        status = "ERROR" if e.error else (e.answer or "").strip().replace("\n", " ")[:60]
        cost = "" if e.cost_usd is None else f" ${e.cost_usd:.4f}"
        sys.stdout.write(f"{e.id[:8]}  {when}  {e.model:<28}{cost}  {e.prompt[:40]!r} -> {status}\n")


@history_app.command("show")
@cli_errors
def history_show(
    entry_id: Annotated[str, typer.Argument(help="An entry id (or a unique prefix).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    save_images: Annotated[Path | None, typer.Option("--save-images", help="Write the entry's images to DIR.")] = None,
) -> None:
    """Show one entry in full."""
    from .config import get_config
    from .history import History
    from .util import atomic_write_bytes

    hist = History(get_config().history_path)
    entry = hist.get(entry_id)
    if entry is None:
        raise ValueError(f"no history entry {entry_id!r} (or the prefix is not unique); see `vision history`")
    if save_images:
        for i, sha in enumerate(entry.images, 1):
            img = hist.image(sha)
            if img:
                atomic_write_bytes(save_images / f"{entry.id}-{i}.jpg", img.data)
    if as_json:
        _print_json(entry.to_dict())
        return
    d = entry.to_dict()
    lines = [f"id: {d['id']}", f"when: {d['created_at_iso']}", f"model: {d['model']}", f"prompt: {d['prompt']}"]
    if d["system"]:
        lines.append(f"instructions: {d['system']}")
    lines.append(f"images: {', '.join(s[:12] for s in d['images']) or 'none'}")
    if d["error"]:
        lines.append(f"error: {d['error']}")
    lines.append(f"tokens: {d['input_tokens']} in / {d['output_tokens']} out ({d['image_tokens']} image)")
    lines.append(f"cost: {d['cost_usd']} (estimated up to {d['estimated_cost_usd']})")
    lines.append(f"latency: {d['latency_ms']} ms{' (cached)' if d['cached'] else ''}")
    lines += ["", d["answer"] or ""]
    sys.stdout.write("\n".join(lines) + "\n")


@history_app.command("clear")
@cli_errors
def history_clear(yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False) -> None:
    """Delete every history entry and stored image."""
    from .config import get_config
    from .history import History

    if not yes and not typer.confirm("Delete the whole history?"):
        raise typer.Exit(1)
    n = History(get_config().history_path).clear()
    sys.stdout.write(f"deleted {n} entries\n")


def main() -> None:
    app(prog_name="vision")


if __name__ == "__main__":  # pragma: no cover
    main()
