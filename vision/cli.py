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


# -- council ----------------------------------------------------------------------------------------


@app.command()
@cli_errors
def council(
    args: Annotated[list[str], typer.Argument(
        help="IMAGE... QUESTION: images (paths, URLs, - for stdin), then the question.")],
    members: Annotated[str, typer.Option(
        "--members", "-M", help="Comma-separated provider/model names or aliases, at least two.")],
    chair: Annotated[str | None, typer.Option(
        "--chair", help="The model that writes the synthesis (default: the first member).")] = None,
    mode: Annotated[str, typer.Option(
        "--mode", help="answers (stage 1), ranking (stages 1-2) or full (1-3, the default).")] = "full",
    as_json: Annotated[bool, typer.Option("--json", help="Print every stage as one JSON object.")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Seconds each model has per request (default: the timeout setting).")] = None,
    ocr: Annotated[bool, typer.Option(
        "--ocr", help="Read the text on this machine and give it to the members as quoted data; "
        "flag numbers that disagree with it.")] = False,
    include_own: Annotated[bool, typer.Option(
        "--include-own", help="Reviewers also rank their own (anonymous) answer.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Fix the labels and the order answers are shown in.")]
    = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", min=1, help="Requests in flight at once (default: one per member, at most 8).")] = None,
    follow_up: Annotated[list[str] | None, typer.Option(
        "--follow-up", help="A follow-up question to the whole council about the same images. Repeatable.")] = None,
    system: SystemOpt = None,
    option: OptionOpt = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what the round would cost at most; send nothing.")] = False,
    no_history: Annotated[bool, typer.Option("--no-history", help="Do not log this council.")] = False,
) -> None:
    """Ask several models the same question, let them rank each other's answers anonymously, and have a
    chair write one synthesis."""
    import shutil

    from .council import Council
    from .providers.base import Options

    images, question = _split_images_and_question(args)
    if question is None:
        raise ValueError("give the question after the image(s), e.g. vision council photo.jpg \"What is this?\" "
                         "--members a,b")
    board = Council(_load_inputs(images), members, chair=chair, mode=mode, include_own=include_own,
                    timeout=timeout, concurrency=concurrency, seed=seed, system=system,
                    options=Options.parse(option or []), ocr=ocr, history=False if no_history else None)
    if dry_run:
        estimate = board.plan(question)
        if as_json:
            _print_json({"dry_run": True, "estimate": estimate.to_dict()})
        else:
            for call in estimate.calls:
                sys.stdout.write(f"{call.stage:<10} {call.member:<36} ~{call.input_tokens} input tokens, "
                                 f"at most {_usd(call.max_cost_usd)}\n")
            sys.stdout.write(f"total: at most {_usd(estimate.max_cost_usd)}\n")
        return
    width = shutil.get_terminal_size().columns
    ascii_only = not (sys.stdout.encoding or "").lower().replace("-", "").startswith("utf")
    results = []
    for q in [question, *(follow_up or [])]:
        if not as_json:
            est = board.plan(q)
            cost = (f"at most ${est.max_cost_usd:.5f}" if est.max_cost_usd is not None else
                    f"cost unknown: no price for {', '.join(est.unpriced())} in the model table")
            _err(f"asking {len(board.members)} members ({cost})...")
        result = board.ask(q)
        results.append(result)
        if not as_json:
            sys.stdout.write(result.to_text(width, ascii_only=ascii_only))
    if as_json:
        _print_json(results[0].to_dict() if len(results) == 1 else
                    {"council_id": board.id, "rounds": [r.to_dict() for r in results]})


def _usd(value: float | None) -> str:
    return "an unknown cost (no price in the model table)" if value is None else f"${value:.5f}"


# -- imagine and jobs (the caption-to-image bridge) ---------------------------------------------------

jobs_app = typer.Typer(help="List, resume and cancel image and video generation jobs.", no_args_is_help=False)
app.add_typer(jobs_app, name="jobs")


class _JobProgress:
    """Job progress on stderr: a rich progress bar on a terminal, one line per change otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}
        self.last: dict[str, tuple[str, int]] = {}

    def __call__(self, job: Any) -> None:
        pct = None if job.progress is None else int(job.progress * 100)
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

            if self.bar is None:
                self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                    TimeElapsedColumn(), console=Console(stderr=True), transient=False)
                self.bar.start()
            if job.id not in self.tasks:
                _err(f"job {job.id}: {job.kind} with {job.generator}")
                self.tasks[job.id] = self.bar.add_task(f"{job.kind} {job.id[:8]}", total=100)
            self.bar.update(self.tasks[job.id], completed=pct or 0,
                            description=f"{job.kind} {job.id[:8]} {job.status:<11}")
            return
        key = (job.status, (pct or 0) // 25)
        if self.last.get(job.id) != key:
            self.last[job.id] = key
            _err(f"job {job.id} {job.generator}: {job.status}{'' if pct is None else f' {pct}%'}")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
            self.tasks.clear()

    def confirm_cancel(self, job: Any) -> bool:
        """Ctrl-C: ask whether to cancel at the provider too (only on a terminal; else keep it running)."""
        self.stop()
        if not sys.stdin.isatty():
            return False
        return typer.confirm(f"\nCancel job {job.id} at the provider too? (no: it keeps running and "
                             f"`vision jobs resume {job.id}` collects it)", default=False, err=True)


def _print_imagine_plan(plan: Any) -> None:
    src = plan.source
    lines = [f"source ({src.kind}): {src.caption or ''}".rstrip()]
    lines += [f"  - {h}" for h in src.headlines]
    if src.description:
        lines.append(f"  described by {src.describer}: {src.description}")
    for label, written in (("image prompt", plan.image_prompt), ("video prompt", plan.video_prompt)):
        if written is not None:
            lines += ["", f"{label} ({written.writer}, {written.prompt_version}, {written.prompt_style}, "
                      f"{len(written.prompt)}/{written.max_chars} chars):", f"  {written.prompt}"]
            if written.negative_prompt:
                lines.append(f"  negative: {written.negative_prompt}")
    for i, job in enumerate(plan.jobs, 1):
        cost = "price unknown" if job.estimate_usd is None else f"~${job.estimate_usd:.4f}"
        lines += ["", f"job {i}: {job.generator.kind} with {job.generator.name} ({job.generator.api}), {cost}",
                  "  request: " + json.dumps(_elide_request(job.inputs), ensure_ascii=False)]
        lines += [f"  note: {n}" for n in job.notes]
    total = plan.estimated_cost_usd
    lines += ["", "estimated cost: " + ("unknown (a model has no price in generators.toml)" if total is None
                                        else f"${total:.4f}")]
    if plan.writer_cost_usd:
        lines.append(f"prompt writer (already spent): ${plan.writer_cost_usd:.5f}")
    if plan.budget_usd is not None:
        lines.append(f"budget: ${plan.budget_usd:.4f}")
    sys.stdout.write("\n".join(lines) + "\n")


@app.command()
@cli_errors
def imagine(
    caption: Annotated[str | None, typer.Argument(
        help="What to picture (with --headlines: their theme, e.g. \"today's headlines\").")] = None,
    headlines: Annotated[Path | None, typer.Option(
        "--headlines", help="A file of headlines: one per line, an RSS/Atom feed, or JSON.")] = None,
    from_image: Annotated[str | None, typer.Option(
        "--from-image", help="Start from a photo: a vision model describes it first.")] = None,
    style: Annotated[str | None, typer.Option(
        "--style", help="A style preset (photo, cyberpunk, watercolour, comic, poster, isometric) or words.")] = None,
    image_model: Annotated[str | None, typer.Option(
        "--image-model", help="provider/model of the image generator (default: the image_model setting).")] = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=16, help="How many images.")] = 1,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for the writer and the generators.")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Send the caption as is (no prompt writer).")] = False,
    video: Annotated[bool, typer.Option("--video", help="Also make a video, starting from the first image.")] = False,
    video_model: Annotated[str | None, typer.Option(
        "--video-model", help="provider/model of the video generator (default: the video_model setting).")] = None,
    seconds: Annotated[int | None, typer.Option("--seconds", min=1, help="Video length (the model's choices).")]
    = None,
    video_from: Annotated[Path | None, typer.Option(
        "--video-from", help="Make only a video, starting from this image.")] = None,
    aspect_ratio: Annotated[str | None, typer.Option("--aspect-ratio", help="W:H, e.g. 16:9.")] = None,
    size: Annotated[str | None, typer.Option("--size", help="WIDTHxHEIGHT, for models that take a size.")] = None,
    output_format: Annotated[str | None, typer.Option("--format", help="Image format: png, webp, jpg...")] = None,
    writer_model: Annotated[str | None, typer.Option(
        "--writer-model", help="\"template\" (no key) or an LLM such as openai/gpt-4.1-mini.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output directory (default: the output_dir setting, ./outputs).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the written prompt, the requests and the cost estimate; submit nothing.")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Seconds to wait for each job before leaving it to `vision jobs resume`.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Turn a caption, headlines or a photo into a prompt, then an image (and a video)."""
    from .bridge.pipeline import imagine as run_imagine
    from .bridge.pipeline import plan_imagine

    kwargs: dict[str, Any] = {
        "headlines": headlines, "from_image": from_image, "style": style, "image_model": image_model, "n": n,
        "seed": seed, "raw": raw, "video": video, "video_model": video_model, "seconds": seconds,
        "video_from": video_from, "aspect_ratio": aspect_ratio, "size": size, "output_format": output_format,
        "writer_model": writer_model}
    if dry_run:
        plan = plan_imagine(caption, **kwargs)
        if as_json:
            _print_json({"dry_run": True, **_elide_request(plan.to_dict())})
        else:
            _print_imagine_plan(plan)
        return
    progress = _JobProgress()

    def announce(plan: Any) -> None:
        if not as_json:
            total = plan.estimated_cost_usd
            prompt = (plan.image_prompt or plan.video_prompt).prompt
            _err(f"prompt: {prompt}")
            _err(f"{len(plan.jobs)} job(s), estimated " + ("cost unknown" if total is None else f"${total:.4f}"))

    try:
        generations = run_imagine(caption, out_dir=out, timeout=timeout, on_update=progress,
                                  confirm_cancel=progress.confirm_cancel, on_plan=announce, **kwargs)
    finally:
        progress.stop()
    if as_json:
        _print_json([g.to_dict() for g in generations])
        return
    for g in generations:
        for f in g.files:
            sys.stdout.write(f"{f}\n")
    if generations:
        _err(f"provenance beside each file (*.json) and in {generations[0].files[0].parent / 'index.jsonl'}")


@jobs_app.callback(invoke_without_command=True)
@cli_errors
def jobs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many jobs.")] = 20,
    active: Annotated[bool, typer.Option("--active", help="Only jobs not finished or not collected.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List generation jobs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from .bridge.jobs import JobStore

    jobs = JobStore().list(active_only=active, limit=limit)
    if as_json:
        _print_json([j.to_dict() for j in jobs])
        return
    if not jobs:
        sys.stdout.write("no jobs yet\n")
        return
    for j in jobs:
        when = (j.to_dict()["created_at_iso"] or "").replace("T", " ")[:19]
        pct = "" if j.progress is None or j.status == "completed" else f" {j.progress:.0%}"
        what = f"{len(j.outputs)} file(s)" if j.outputs else (j.error or "")
        cost = "" if j.estimated_cost_usd is None else f" ~${j.estimated_cost_usd:.3f}"
        sys.stdout.write(f"{j.id}  {when}  {j.kind:<5} {j.generator:<42} {j.status + pct:<16}{cost}  {what}\n")


@jobs_app.command("show")
@cli_errors
def jobs_show(job_id: Annotated[str, typer.Argument(help="A job id (or a unique prefix).")]) -> None:
    """Show one job's record (as stored, JSON)."""
    from .bridge.jobs import JobStore

    _print_json(JobStore().get(job_id).to_dict())


@jobs_app.command("resume")
@cli_errors
def jobs_resume(
    job_ids: Annotated[list[str] | None, typer.Argument(help="Job ids (default: every unfinished job).")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for jobs still running.")] = True,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds to wait for each job.")] = None,
) -> None:
    """Collect the outputs of jobs that finished (or are still running) after this process went away."""
    from .bridge.jobs import JobRunner, JobStore
    from .errors import GenerationInterrupted, VisionError

    store = JobStore()
    jobs = [store.get(i) for i in job_ids] if job_ids else list(reversed(store.list(active_only=True)))
    if not jobs:
        _err("no unfinished jobs")
        return
    progress = _JobProgress()
    runner = JobRunner(store, timeout=timeout, on_update=progress, confirm_cancel=progress.confirm_cancel)
    failed = 0
    try:
        for job in jobs:
            try:
                files = runner.resume(job, wait=wait)
            except GenerationInterrupted:
                raise
            except VisionError as exc:
                failed += 1
                progress.stop()
                _err(f"error: {exc}")
                continue
            if not files:
                _err(f"job {job.id}: still {job.status}")
            for f in files:
                sys.stdout.write(f"{f}\n")
    finally:
        progress.stop()
    if failed:
        raise typer.Exit(1)


@jobs_app.command("cancel")
@cli_errors
def jobs_cancel(job_id: Annotated[str, typer.Argument(help="A job id (or a unique prefix).")]) -> None:
    """Cancel a running job at the provider."""
    from .bridge.jobs import JobRunner, JobStore

    store = JobStore()
    job = store.get(job_id)
    JobRunner(store).cancel(job)
    sys.stdout.write(f"canceled {job.id}\n")


# -- watch and snap (cameras) -------------------------------------------------------------------------

FpsOpt = Annotated[float | None, typer.Option(
    "--fps", min=0.1, help="At most this many frames per second (and ask a webcam for that rate).")]
SizeOpt = Annotated[str | None, typer.Option(
    "--size", help="WIDTHxHEIGHT: ask a webcam for this resolution; larger frames of any source are fitted in it.")]
RealtimeOpt = Annotated[bool, typer.Option(
    "--realtime", help="Play a file at its own frame rate like a live camera, dropping the frames there is no "
    "time for (default: every frame, at the file's own pace).")]


def _parse_size(size: str | None) -> tuple[int, int] | None:
    if size is None:
        return None
    w, sep, h = size.lower().partition("x")
    if not sep or not w.strip().isdigit() or not h.strip().isdigit() or int(w) < 1 or int(h) < 1:
        raise ValueError(f"--size must be WIDTHxHEIGHT in pixels, like 1280x720 (got {size!r})")
    return int(w), int(h)


def _pick_source(camera: str | None, video: Path | None, url: str | None, source: str | None) -> str:
    given = [(name, value) for name, value in (("--camera", camera), ("--video", video), ("--url", url),
                                               ("--source", source)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give one source, not {' and '.join(n for n, _ in given)}")
    if not given:
        return "0"
    name, value = given[0]
    if name == "--video":
        path = Path(str(value)).expanduser()
        if path.is_dir():
            raise ValueError(f"{value} is a folder: use --source for a folder of images")
        return str(path)
    if name == "--url" and "://" not in str(value):
        raise ValueError(f"--url needs a full URL such as http://192.168.1.20:8080/video or rtsp://host/stream "
                         f"(got {value!r})")
    return str(value)


@app.command()
@cli_errors
def watch(
    question: Annotated[str | None, typer.Argument(
        help="The question to ask about each new scene (default: the preset's).")] = None,
    camera: Annotated[str | None, typer.Option(
        "--camera", help="A webcam: index (0, 1, ...) or device path (/dev/video2). The default source.")] = None,
    video: Annotated[Path | None, typer.Option("--video", help="A video file.")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="A network camera: MJPEG or JPEG snapshot over http(s), or rtsp://.")] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="Any source: a folder of images, an image, or any of the above.")] = None,
    model: ModelOpt = None,
    system: SystemOpt = None,
    preset: PresetOpt = None,
    option: OptionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per answer, one per line.")] = False,
    rate: Annotated[float, typer.Option(
        "--rate", min=0.001, help="At most this many requests per second (default 1).")] = 1.0,
    settle: Annotated[float, typer.Option(
        "--settle", min=0.0, help="Seconds the camera must be still before asking (default 0.06).")] = 0.06,
    roi: Annotated[str, typer.Option(
        "--roi", help="Small print: auto (crop plus whole frame when the text would be too small), crop, both, "
        "or off.")] = "auto",
    fps: FpsOpt = None,
    size: SizeOpt = None,
    realtime: RealtimeOpt = False,
    max_asks: Annotated[int | None, typer.Option("--max-asks", min=1, help="Stop after this many asks.")] = None,
    duration: Annotated[float | None, typer.Option(
        "--duration", min=0.0, help="Stop after this many seconds (of the source's time).")] = None,
    no_history: Annotated[bool, typer.Option("--no-history", help="Do not log these asks.")] = False,
) -> None:
    """Watch a camera, video or stream and answer the question each time it settles on something new.

    Asks only when the picture is still, bright and sharp, and differs from the last scene asked about;
    sends the sharpest frame of that moment (with a crop when small print needs one); at most one
    request in flight. Stops at the end of a file, after --max-asks or --duration, or on Ctrl-C.
    """
    from .camera import Camera
    from .live import GateSettings, LiveSession
    from .providers.base import Options
    from .roi import ROI_MODES

    if roi not in ROI_MODES:
        raise ValueError(f"--roi must be one of {', '.join(ROI_MODES)} (got {roi!r})")
    spec = _pick_source(camera, video, url, source)
    options = Options.parse(option or [])
    gate = GateSettings(rate=rate, settle=settle)
    cam = Camera(spec, fps=fps, size=_parse_size(size), realtime=realtime or None)
    # the session (which builds the model's client) is ready before the camera starts streaming
    session = LiveSession(cam, question or "", model=model, system=system, preset=preset, options=options,
                          history=False if no_history else None, gate=gate, roi=roi,  # type: ignore[arg-type]
                          max_asks=max_asks, duration=duration)
    with cam:
        shape = f", {cam.frame_size[0]}x{cam.frame_size[1]}" if cam.frame_size else ""
        rate_note = f" at {cam.fps:g} fps" if cam.fps and cam.kind in {"video", "webcam", "stream"} else ""
        _err(f"watching {cam.name} ({cam.kind}{shape}{rate_note}) with {session.model.name}; "
             f"asking about each new scene, at most {rate:g} per second; Ctrl-C stops")
        emit = _emit_json if as_json else _emit_text
        try:
            for answer in session.answers():
                emit(answer)
        except KeyboardInterrupt:
            if session.in_flight:
                _err("stopping: waiting for the answer already paid for (Ctrl-C again to abandon it)")
                try:
                    for answer in session.drain():
                        emit(answer)
                except KeyboardInterrupt:
                    _err("abandoned the answer in flight")
            else:
                _err("stopped")
        _err(_watch_summary(session))


def _emit_text(result: Any) -> None:
    head = f"-- scene {result.scene} · {result.time:.1f} s · frame {result.index} · sharpness {result.sharpness:.0f}"
    if result.roi is not None and result.roi.crop:
        head += f" · crop {','.join(map(str, result.roi.crop))}"
    sys.stdout.write(head + "\n")
    if result.answer is None:
        sys.stdout.flush()
        _err(f"error: {result.error} (still watching)")
        return
    sys.stdout.write(result.answer.text.rstrip() + "\n")
    sys.stdout.flush()
    total = result.total_usage.cost_usd
    spent = "free" if total == 0 else ("cost unknown" if total is None else f"${total:.5f}")
    _err(f"{_footer(result.answer)[:-1]} · total {spent}]")


def _emit_json(result: Any) -> None:
    sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _watch_summary(session: Any) -> str:
    s = session.summary
    total = s.usage.cost_usd
    spent = "free" if total == 0 else ("cost unknown" if total is None else f"${total:.5f}")
    failed = f", {s.failures} failed" if s.failures else ""
    tokens = f"{s.usage.input_tokens} in / {s.usage.output_tokens} out tokens · " if s.usage.input_tokens else ""
    return f"{s.asks} ask(s){failed} about {session.gate.scenes} scene(s) in {s.frames} frames · {tokens}total {spent}"


@app.command()
@cli_errors
def snap(
    source: Annotated[str, typer.Argument(
        help="A webcam index or device, a video file, a folder of images, an image or a URL (default: camera 0).")]
    = "0",
    out: Annotated[Path, typer.Option("--out", help="Where to save it: .jpg, .png or .webp.")] = Path("snap.jpg"),
    seconds: Annotated[float, typer.Option(
        "--seconds", "-s", min=0.0, help="Look for the best frame over this many seconds (default 2).")] = 2.0,
    fps: FpsOpt = None,
    size: SizeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was saved as JSON.")] = False,
) -> None:
    """Save the best frame of the next few seconds: the sharpest still, bright frame (the sharpest one
    when the camera never held still)."""
    from .camera import Camera
    from .quality import QualityTracker

    suffix = out.suffix.lower()
    if suffix not in {".jpg", ".jpeg", ".png", ".webp"}:
        raise ValueError(f"--out must end in .jpg, .png or .webp (got {out.name!r})")
    tracker = QualityTracker(history=max(seconds, 0.001) + 1.0, max_kept=256)
    first = last = None
    with Camera(source, fps=fps, size=_parse_size(size)) as cam:
        try:
            while True:
                try:
                    frame = cam.read(timeout=max(5.0, seconds + 5.0))
                except TimeoutError as exc:
                    raise ValueError(f"{cam.name}: no frame for {max(5.0, seconds + 5.0):g} s") from exc
                if frame is None:
                    break
                first = first or frame
                last = frame
                tracker.update(frame, still=True if cam.stills else None)
                if frame.timestamp - first.timestamp >= seconds:
                    break
        except KeyboardInterrupt:
            _err("stopped early: saving the best frame so far")
    if last is None:
        raise ValueError(f"{source}: the source gave no frame")
    best = tracker.best_frame(seconds + 1.0) or tracker.best_frame(seconds + 1.0, still_only=False)
    chosen = best.frame if best else last
    info = best.info if best else tracker.last
    chosen.save(out)
    data = {"path": str(out), "frame": getattr(chosen, "index", 0),
            "time": round(chosen.timestamp - first.timestamp, 3), "size": list(chosen.size),
            "sharpness": round(info.sharpness, 1) if info else None,
            "still": bool(info and info.still), "exposure": info.exposure.verdict if info else None,
            "frames_seen": tracker.count}
    if as_json:
        _print_json(data)
        return
    note = "" if best else " (every frame was too dark: saved the last one)"
    sys.stdout.write(f"{out}\n")
    _err(f"saved frame {data['frame']} of {tracker.count} ({data['size'][0]}x{data['size'][1]}, sharpness "
         f"{data['sharpness']}, {'still' if data['still'] else 'moving'}){note}")


# -- ocr, extract, explain -------------------------------------------------------------------------

EngineOpt = Annotated[str | None, typer.Option(
    "--engine", help="OCR engine: auto, tesseract, rapidocr, combined (default: the best installed for the kind).")]
KindOpt = Annotated[str, typer.Option("--kind", help="receipt, nutrition, generic or auto.")]
PasswordOpt = Annotated[str | None, typer.Option("--password", help="Password of an encrypted PDF.")]


@app.command()
@cli_errors
def ocr(
    image: Annotated[str, typer.Argument(help="An image or a PDF.")],
    engine: Annotated[str, typer.Option("--engine", help="auto, tesseract, rapidocr or combined.")] = "auto",
    lang: Annotated[str, typer.Option("--lang", help="Tesseract language(s), e.g. eng or eng+deu.")] = "eng",
    as_json: Annotated[bool, typer.Option("--json", help="Words, lines, boxes and confidences as JSON.")] = False,
    overlay: Annotated[Path | None, typer.Option(
        "--overlay", help="Write the image with word boxes coloured by confidence (PNG).")] = None,
    psm: Annotated[int | None, typer.Option("--psm", min=0, max=13, help="Tesseract page segmentation mode.")] = None,
    dpi: Annotated[int, typer.Option("--dpi", min=50, max=600, help="Resolution for scanned PDF pages.")] = 200,
    password: PasswordOpt = None,
) -> None:
    """Read the text of an image or PDF on this machine."""
    from .frame import Frame
    from .ocr import read, save_overlay

    result = read(image, engine=engine, lang=lang, psm=psm, dpi=dpi, password=password)
    if overlay:
        if result.words and max(w.page for w in result.words) > 0:
            _err("note: the overlay shows the first page only")
        if Path(image).suffix.lower() == ".pdf":
            from .ocr.pdf import iter_pages

            first = next(iter_pages(image, dpi=dpi, password=password, pages=[0]))
            frame = first.render()
        else:
            frame = Frame.load(image)
        save_overlay(frame, result, overlay, page=0)
        _err(f"overlay written to {overlay}")
    if as_json:
        _print_json(result.to_dict())
        return
    for warning in result.warnings:
        _err(f"warning: {warning}")
    sys.stdout.write(result.text + ("\n" if result.text else ""))
    low = result.below(0.6)
    _err(f"[{result.engine} · {len(result.lines)} lines · {result.confidence:.0%} confidence"
         f"{f' · {len(low)} low-confidence words' if len(low) else ''} · {result.seconds:.2f} s]")


@app.command()
@cli_errors
def extract(
    source: Annotated[str, typer.Argument(help="An image or PDF; or a directory or glob for a batch.")],
    kind: KindOpt = "auto",
    engine: EngineOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fields as JSON.")] = False,
    jsonl: Annotated[Path | None, typer.Option(
        "--jsonl", help="Batch: append one JSON line per file to OUT (resumable).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Batch: processes (default: cores).")] = None,
    password: PasswordOpt = None,
) -> None:
    """Turn a receipt or label into checked fields (a directory or glob with --jsonl runs a batch)."""
    from .documents import KINDS

    if kind not in KINDS:
        raise ValueError(f"--kind must be one of {', '.join(KINDS)}")
    is_batch = jsonl is not None or Path(source).is_dir() or any(ch in source for ch in "*?[")
    if is_batch:
        if jsonl is None:
            raise ValueError("a batch needs --jsonl OUT (one JSON line per file)")
        _run_batch(source, jsonl, kind, engine, workers)
        return
    from .documents import extract as do_extract

    doc = do_extract(source, kind=kind, engine=engine, password=password)
    if as_json:
        data = doc.to_json_dict()
        data.pop("evidence", None)
        _print_json(data)
        return
    _print_document(doc)


def _run_batch(source: str, out: Path, kind: str, engine: str | None, workers: int | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .documents.batch import run_batch

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("extracting", total=None)

        def progress(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total, description=Path(path).name[:30])

        report = run_batch(source, out, kind=kind, engine=engine, workers=workers, progress=progress,
                           handle_sigint=True)
    for path, error in report.failures:
        _err(f"failed: {path}: {error}")
    _err(f"{report.done} extracted, {report.skipped} already done, {report.failed} failed -> {out}")
    if report.interrupted:
        _err("interrupted: run the same command again to resume")
        raise typer.Exit(130)
    if report.done == 0 and report.failed and not report.skipped:
        raise typer.Exit(1)


def _print_document(doc: Any) -> None:
    data = doc.to_json_dict()
    skip = {"kind", "transcription", "checks", "evidence", "low_confidence", "warnings", "source", "engine"}
    out = [f"kind: {doc.kind} (read with {doc.engine})"]
    for key, value in data.items():
        if key in skip or value in (None, [], {}):
            continue
        if key == "items":
            out.append("items:")
            out += [f"  {i.get('quantity') or ''} {i['name']}  {i['amount']}".rstrip() for i in value]
        elif key == "nutrients":
            out.append("nutrients:")
            out += [f"  {k}: {v['amount']}{v['unit'] or ''}" + (f"  {v['dv_percent']}% DV" if v['dv_percent'] else "")
                    for k, v in value.items()]
        else:
            out.append(f"{key}: {value}")
    for c in doc.checks:
        out.append(f"{'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}")
    if doc.low_confidence:
        words = ", ".join(f"{w.text!r} ({w.confidence:.0%})" for w in doc.low_confidence[:12])
        out.append(f"low-confidence words: {words}")
    out += [f"warning: {w}" for w in doc.warnings]
    sys.stdout.write("\n".join(out) + "\n")


@app.command()
@cli_errors
def explain(
    image: Annotated[str, typer.Argument(help="The photo or scan of a receipt or label.")],
    kind: KindOpt = "auto",
    confirm: Annotated[Path | None, typer.Option(
        "--confirm", help="The fields as `vision extract --json` printed them, corrected by you.")] = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Send without asking (step 1 is still printed).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print both steps as JSON.")] = False,
    option: OptionOpt = None,
) -> None:
    """Two steps: read and check the document here, then ask a model to explain it."""
    from .documents import extract as do_extract
    from .documents import load_document
    from .documents.explain import explain as do_explain
    from .providers.base import Options

    if confirm is not None:
        try:
            data = json.loads(confirm.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {confirm}: {exc}") from None
        doc = load_document(data)
    else:
        doc = do_extract(image, kind=kind, engine=engine)
    if not as_json:
        sys.stdout.write("== step 1: what this machine read (correct it with --confirm FILE) ==\n")
        _print_document(doc)
        if confirm is None and not yes and sys.stdin.isatty():
            answer = typer.prompt("send the photo and this transcription to the model? [y/N]", default="n")
            if answer.strip().lower() not in {"y", "yes"}:
                _err("not sent; save the fields with `vision extract --json`, correct them, and use --confirm")
                raise typer.Exit(1)
    result = do_explain(image, doc, model=model, options=Options.parse(option or []))
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    sys.stdout.write("\n== step 2: the explanation ==\n")
    if result.explanation:
        e = result.explanation
        lines = [e.summary]
        lines += [f"- {p.name}: {p.explanation}" for p in e.parts]
        lines += [f"! {c}" for c in e.cautions]
        sys.stdout.write("\n".join(lines) + "\n")
    else:
        sys.stdout.write(result.answer.rstrip() + "\n")
    for d in result.disagreements:
        sys.stdout.write(f"DISAGREEMENT {d.field}: the OCR read {d.ocr}, the model read {d.model}\n")
    for note in result.notes:
        _err(f"note: {note}")


# -- batch (vision.batch) ---------------------------------------------------------------------------


@app.command()
@cli_errors
def batch(
    sources: Annotated[list[str], typer.Argument(
        help="Folders, globs, files or URLs (s3://, gs://, ... with their fsspec backend installed).")],
    kind: Annotated[str, typer.Option(
        "--kind", help="receipt, nutrition, generic, auto, or none (no OCR: only --ask).")] = "auto",
    engine: EngineOpt = None,
    ask: Annotated[str | None, typer.Option("--ask", help="Ask the model this question about each file.")] = None,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Have the model explain each extracted document (receipts, labels).")] = False,
    model: ModelOpt = None,
    option: OptionOpt = None,
    out: Annotated[Path, typer.Option(
        "--out", help="Output directory: results.jsonl, failures.jsonl, parquet/. Run again to resume.")] = Path(
        "batch-out"),
    parquet: Annotated[bool, typer.Option("--parquet", help="Also write partitioned Parquet (needs pyarrow).")] = False,
    executor: Annotated[str | None, typer.Option(
        "--executor", help="local (this process), process (a local process pool; the default) or dask.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Worker processes of the pool (or of --executor dask) (default: cores).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="An existing Dask cluster: tcp://HOST:8786.")] = None,
    local_cluster: Annotated[int | None, typer.Option(
        "--local-cluster", min=1, help="Start a Dask LocalCluster of N worker processes.")] = None,
    rate: Annotated[float | None, typer.Option(
        "--rate", min=0.001, help="At most this many asks per minute, all workers together.")] = None,
    tpm: Annotated[float | None, typer.Option(
        "--tpm", min=1, help="At most this many tokens per minute (input + max output), all workers.")] = None,
    budget: Annotated[float | None, typer.Option(
        "--budget", min=0.0, help="Stop asking when the asks into this output have cost this many USD.")] = None,
    retries: Annotated[int, typer.Option(
        "--retries", min=0, max=10, help="Tries again a file whose worker died, this many times.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON at the end.")] = False,
) -> None:
    """Extract (and ask about) every file of a folder, bucket or glob: a process pool, or Dask.

    Exactly once and resumable: each file's key is its location and content hash, the results are
    written by this process as they arrive, and running the same command again does only what is
    left. Ctrl-C finishes the files in flight (again: abandons them) and leaves it resumable.
    """
    from .batch import run_batch

    if budget is not None and budget <= 0:
        raise ValueError("--budget must be more than 0")
    if (rate or tpm or budget is not None) and not (ask or explain):
        raise ValueError("--rate, --tpm and --budget limit asks: give --ask QUESTION or --explain")
    progress = _BatchProgress()
    with progress:
        report = run_batch(sources, out, kind=kind, engine=engine, ask=ask, explain=explain, model=model,
                           options=option or [], executor=executor, workers=workers, scheduler=scheduler,
                           local_cluster=local_cluster, parquet=parquet, rate=rate, tpm=tpm, budget_usd=budget,
                           retries=retries, progress=progress.update, notify=progress.say, handle_sigint=True)
    if report.listed == 0 and not report.interrupted:
        from .errors import BatchError

        raise BatchError(f"no input found in {', '.join(sources)} (images and PDFs are picked from folders)")
    shown = report.failures[:20]
    for source, error in shown:
        _err(f"failed: {source}: {error}")
    if report.failed > len(shown):
        _err(f"... and {report.failed - len(shown)} more in {out / 'failures.jsonl'}")
    _err(f"{report.summary()} -> {out}")
    if report.budget_reached:
        _err(f"budget reached: {report.not_asked} file(s) in flight were not asked and the rest were not started; "
             "run again with a higher --budget to do them")
    if report.interrupted:
        _err("interrupted: run the same command again to resume")
    if as_json:
        _print_json(report.to_dict())
    if report.interrupted:
        raise typer.Exit(130)
    if report.done == 0 and report.failed and not report.skipped:
        raise typer.Exit(1)


class _BatchProgress:
    """A progress bar on a terminal (files, files/s, failures, cost); a line every 30 s otherwise."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.tty = sys.stderr.isatty()
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True, disable=not self.tty)
        self.task = self.bar.add_task("batch", total=None, stats="")
        self._last_line = _monotonic()

    def __enter__(self) -> _BatchProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def say(self, message: str) -> None:
        if self.tty:
            self.bar.console.print(message, markup=False, highlight=False)
        else:
            _err(message)

    def update(self, report: Any) -> None:
        stats = f"{report.files_per_second:.2f} files/s · {report.failed} failed"
        if report.asked:
            est = report.estimated_total_cost()
            stats += f" · ${report.cost_usd:.4f}" + (f" (est. ${est:.4f} in all)" if est is not None else "")
        total = None if report.total is None else report.total - report.skipped
        self.bar.update(self.task, completed=report.finished, total=total, stats=stats,
                        description=Path(report.last).name[:28] if report.last else "listing")
        if not self.tty and _monotonic() - self._last_line >= 30:
            self._last_line = _monotonic()
            of = f"/{total}" if total is not None else ""
            _err(f"{report.finished}{of} files · {stats}")


def _monotonic() -> float:
    import time

    return time.monotonic()


# -- the app ----------------------------------------------------------------------------------------


@cli_errors
def app_command(
    host: Annotated[str, typer.Option("--host", help="Address to serve on (0.0.0.0: every network; add --auth).")]
    = "127.0.0.1",
    port: Annotated[int | None, typer.Option("--port", help="Port (default: 7860, or the next free one).")] = None,
    auth: Annotated[str | None, typer.Option(
        "--auth", help="user:password to sign in with (default: the VISION_APP_AUTH variable, else none).")] = None,
    share: Annotated[bool, typer.Option("--share", help="Also open a public gradio.live link (off by default).")]
    = False,
    max_file_size: Annotated[str, typer.Option("--max-file-size", help="Largest upload, e.g. 20mb.")] = "50mb",
    concurrency: Annotated[int, typer.Option(
        "--concurrency", help="Model requests served at once (OCR has its own limit of 2).")] = 4,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Requests that may wait in the queue.")] = 64,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the app in the default browser.")] = False,
) -> None:
    """Open the app in the browser: Point & Ask (webcam or photo), Label & Receipt, Imagine."""
    import importlib.util

    from .errors import ConfigurationError, MissingExtraError

    if importlib.util.find_spec("gradio") is None:
        raise MissingExtraError("apps", "vision app", "gradio")
    if importlib.util.find_spec("apps") is None:
        raise ConfigurationError("the apps package is missing from this installation: reinstall vision-toolkit "
                                 "(pip install 'vision-toolkit[apps]') or run from a checkout")
    from apps.launch import LaunchOptions, launch, parse_auth

    options = LaunchOptions(host=host, port=port, auth=parse_auth(auth), share=share, max_file_size=max_file_size,
                            concurrency=concurrency, max_queue=max_queue, open_browser=open_browser)
    launch(options=options)


app.command("app")(app_command)


def main() -> None:
    app(prog_name="vision")


if __name__ == "__main__":  # pragma: no cover
    main()
