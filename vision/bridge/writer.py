"""The prompt writer: a caption, a list of headlines or a photo in, a generator-shaped prompt out.

Two writers share one contract. The **template** writer (the default, needs no key) is deterministic
string work: it keeps the source as the subject and adds only the style preset's style, lighting,
composition (and camera motion for video). The **LLM** writer (``writer_model`` set to a
``provider/model``) asks a language model with versioned instructions, at temperature 0 and with a
seed, so it is repeatable where the provider honours seeds. Both:

* shape the prompt for the target: short and comma-led for diffusion models, prose for GPT-image
  style models (``prompt_style`` in ``generators.toml``);
* never add objects, people or text, and depict public figures and news events symbolically;
* stay under the generator's ``max_prompt_chars``;
* record the original, the written prompt, the writer and its prompt version.

``raw=True`` sends the caption as is. A photo is first described by a vision model (the LLM writer's
model, else ``settings.default_model``: the ``local`` engine's findings work without a key).
"""

from __future__ import annotations

import html
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..config import Config, GeneratorFacts, StylePreset, get_config
from ..errors import BadResponseError, ConfigurationError, DocumentError, PromptTooLongError

log = logging.getLogger(__name__)

TEMPLATE_VERSION = "template-1"
LLM_VERSION = "llm-1"
DESCRIBE_VERSION = "describe-1"
MAX_HEADLINES_FILE_BYTES = 2 * 1024 * 1024

SYMBOLIC_DIFFUSION = "symbolic allegory, no likenesses of real people"
SYMBOLIC_PROSE = ("Depict any public figures and news events symbolically, as allegory, never as recognizable "
                  "likenesses of real people.")
ADD_NOTHING_PROSE = "Add nothing that the description does not mention."

LLM_INSTRUCTIONS = """You write prompts for an AI {kind} generator.
Rules, all of them always:
1. Keep the subject of the source: the people, objects, places and actions it names. Never add objects, \
people, animals, text, signs or logos that the source does not mention.
2. Add only style, lighting and composition{motion}.
3. Depict public figures and news events symbolically (allegory, symbols, silhouettes), never as \
recognizable likenesses of real people, and never as photographs of real events.
4. Answer with the prompt only: no quotes, no preamble, no explanation, at most {limit} characters.
Format: {format}"""

FORMATS = {
    "diffusion": "one line of short comma-separated phrases, the subject first, then style, lighting and "
                 "composition.",
    "prose": "two to four plain sentences: the scene first, then its style, lighting and composition.",
}

DESCRIBE_PROMPT = ("Describe this photo for an illustrator in one or two sentences: the main subject, the "
                   "setting and the dominant colours. Name only what is visible; do not guess who anyone is.")

_NEWS_KINDS = {"headlines"}
_NAME = re.compile(r"\b[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?\s+[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?\b")
_TITLES = ("President", "Prime Minister", "Chancellor", "Senator", "Governor", "Mayor", "Minister", "King",
           "Queen", "Prince", "Princess", "Pope", "General", "Judge", "CEO", "Dr", "Mr", "Mrs", "Ms", "Sir")
_TITLED_NAME = re.compile(
    r"\b(" + "|".join(_TITLES) + r")\.?\s+(?:[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?\s*){1,3}\b")


def symbolise(text: str) -> str:
    """Replace a titled person's name ("President Jane Doe") with a symbolic figure ("a figure
    symbolising the president"), so no generator is asked for a real person's likeness. Names without a
    title stay (they cannot be told from places); the prompt then asks for a symbolic depiction."""
    out = _TITLED_NAME.sub(lambda m: f"a figure symbolising the {m.group(1).lower()} ", text)
    return out.replace("  ", " ").strip()


# -- sources -----------------------------------------------------------------------------------------


@dataclass
class Source:
    """What the prompt is about: a caption, headlines, or a described photo."""

    kind: Literal["caption", "headlines", "image"]
    caption: str | None = None
    headlines: list[str] = field(default_factory=list)
    image: str | None = None
    image_sha256: str | None = None
    description: str | None = None
    describer: str | None = None
    describer_version: str | None = None

    @property
    def text(self) -> str:
        """The subject as one string (for raw mode and the LLM)."""
        if self.kind == "headlines":
            return "\n".join(self.headlines)
        if self.kind == "image":
            return self.description or ""
        return self.caption or ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [])}


def caption_source(caption: str) -> Source:
    text = _clean(caption)
    if not text:
        raise ValueError("the caption is empty: give a caption, --headlines FILE or --from-image PHOTO")
    return Source("caption", caption=text)


def headlines_source(headlines: Sequence[str] | str | Path, *, caption: str | None = None,
                     limit: int | None = None, config: Config | None = None) -> Source:
    """Headlines from a list, or from a text, RSS/Atom or JSON file (see :func:`read_headlines`)."""
    config = config or get_config()
    limit = limit or config.settings.max_headlines
    if isinstance(headlines, (str, Path)):
        items = read_headlines(headlines, limit=limit)
    else:
        items = [h for h in (_clean(x) for x in headlines) if h][:limit]
    if not items:
        raise ValueError("no headlines given")
    return Source("headlines", caption=_clean(caption) if caption else None, headlines=items)


def read_headlines(path: str | Path, *, limit: int = 12) -> list[str]:
    """Read headlines from a file: one per line (``#`` comments and bullets ignored), an RSS or Atom
    feed (item and entry titles), or JSON (a list of strings, or objects with ``title``/``headline``,
    possibly under ``headlines``, ``articles`` or ``items``)."""
    p = Path(path).expanduser()
    try:
        if p.stat().st_size > MAX_HEADLINES_FILE_BYTES:
            raise DocumentError(f"{p}: headlines file is over {MAX_HEADLINES_FILE_BYTES // 1024 // 1024} MiB")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DocumentError(f"{p}: no such headlines file") from None
    except OSError as exc:
        raise DocumentError(f"{p}: cannot read the headlines file ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{p}: the headlines file is not UTF-8 text") from exc
    stripped = text.lstrip()
    if stripped.startswith("<"):
        items = _headlines_from_xml(stripped, p)
    elif stripped.startswith(("[", "{")):
        items = _headlines_from_json(stripped, p)
    else:
        items = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line) for line in text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
    items = [h for h in (_clean(x) for x in items) if h]
    seen: set[str] = set()
    unique = [h for h in items if not (h.lower() in seen or seen.add(h.lower()))]  # type: ignore[func-returns-value]
    if not unique:
        raise DocumentError(f"{p}: no headlines found in the file")
    return unique[:limit]


def _headlines_from_xml(text: str, path: Path) -> list[str]:
    try:
        root = ET.fromstring(text)  # expat resolves no external entities
    except ET.ParseError as exc:
        raise DocumentError(f"{path}: not a readable RSS/Atom feed ({exc})") from exc
    out = []
    for el in root.iter():
        if _local(el.tag) in {"item", "entry"}:
            title = next((c for c in el if _local(c.tag) == "title"), None)
            if title is not None:
                out.append(re.sub(r"<[^>]+>", "", html.unescape("".join(title.itertext()))))
    return out


def _headlines_from_json(text: str, path: Path) -> list[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(data, dict):
        data = next((data[k] for k in ("headlines", "articles", "items", "entries") if isinstance(data.get(k), list)),
                    [])
    out = []
    for item in data if isinstance(data, list) else []:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            value = item.get("title") or item.get("headline")
            if isinstance(value, str):
                out.append(value)
    return out


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1].lower()


def _clean(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def image_source(image: Any, *, model: str | None = None, seed: int | None = None,
                 config: Config | None = None) -> Source:
    """Describe a photo with a vision model (the ``local`` engine's findings work without a key)."""
    from ..chat import Conversation
    from ..frame import Frame
    from ..providers.base import Options

    config = config or get_config()
    frame = Frame.load(image)
    chat = Conversation(frame, model=model, options=Options(temperature=0, seed=seed), config=config)
    answer = chat.ask(DESCRIBE_PROMPT)
    findings = (answer.raw or {}).get("findings") if isinstance(answer.raw, dict) else None
    description = _describe_findings(findings[0]) if findings else _clean(answer.text)
    if not description:
        raise BadResponseError("the image description is empty", provider=chat.model.provider,
                               model=chat.model.model_id)
    return Source("image", image=str(image) if isinstance(image, (str, Path)) else frame.source,
                  image_sha256=frame.digest, description=description, describer=chat.model.name,
                  describer_version=DESCRIBE_VERSION)


def _describe_findings(f: dict[str, Any]) -> str:
    """A short description from the local engine's findings (colours, people, printed title)."""
    colours = [c["name"] for c in f.get("colours", [])[:3]]
    parts = [f"a scene in {', '.join(colours[:-1]) + ' and ' + colours[-1] if len(colours) > 1 else colours[0]} "
             "tones" if colours else "a scene"]
    faces = int(f.get("faces") or 0)
    if faces:
        parts.append(f"with {faces} {'person' if faces == 1 else 'people'}")
    if f.get("title"):
        parts.append(f'featuring the words "{f["title"]}"')
    return " ".join(parts)


# -- the written prompt ------------------------------------------------------------------------------


@dataclass
class WrittenPrompt:
    """The original, the prompt that will be sent, and how it was made."""

    source: Source
    prompt: str
    negative_prompt: str | None
    writer: str  # "template", "raw" or the LLM's provider/model
    prompt_version: str
    instructions: str  # the LLM's instructions, or the template's rule
    style: str | None
    style_kind: Literal["preset", "free", "none"]
    prompt_style: Literal["diffusion", "prose"]
    kind: Literal["image", "video"]
    max_chars: int
    expanded: bool  # the writer expanded the caption: switch the generator's own rewriter off
    symbolic: bool
    seed: int | None = None
    temperature: float | None = None
    cost_usd: float | None = 0.0
    edited: bool = False  # the person changed the written prompt before it was sent

    def edited_to(self, text: str) -> WrittenPrompt:
        """This prompt as the person corrected it (the writer's record is kept, marked edited)."""
        text = text.strip()
        if not text:
            raise ValueError(f"the {self.kind} prompt is empty: write one, or leave the written one")
        if len(text) > self.max_chars:
            raise ValueError(f"the {self.kind} prompt has {len(text)} characters but the generator accepts at most "
                             f"{self.max_chars}; shorten it")
        if text == self.prompt:
            return self
        return replace(self, prompt=text, edited=True)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"] = self.source.to_dict()
        return d


class PromptWriter:
    """Writes prompts with the template (``model="template"``) or an LLM (``model="provider/model"``)."""

    def __init__(self, model: str | None = None, *, seed: int | None = None, temperature: float = 0.0,
                 config: Config | None = None) -> None:
        self.config = config or get_config()
        self.model = (model or self.config.settings.writer_model or "template").strip()
        self.seed = seed
        self.temperature = temperature
        if self.is_llm and self.model in {"local"}:
            raise ConfigurationError("the local engine is not a language model and cannot write prompts; "
                                     "use writer_model = \"template\" or an LLM such as openai/gpt-4.1-mini")

    @property
    def is_llm(self) -> bool:
        return self.model != "template"

    @property
    def describer(self) -> str | None:
        """The vision model that describes photos: the LLM writer's model, else the default model."""
        return self.model if self.is_llm else None

    def write(self, source: Source, target: GeneratorFacts, *, style: str | None = None, raw: bool = False,
              kind: Literal["image", "video"] | None = None) -> WrittenPrompt:
        """A prompt for ``target`` (a generator table entry) from ``source``."""
        kind = kind or target.kind
        limit = target.max_prompt_chars
        preset, style_text, style_kind = self._style(style)
        symbolic = source.kind in _NEWS_KINDS or bool(_NAME.search(source.text))
        negative = preset.negative if preset and preset.negative else None
        if raw:
            text = source.text.strip()
            if not text:
                raise ValueError("raw mode needs a caption (or headlines) to send as is")
            if len(text) > limit:
                raise PromptTooLongError(target.match, len(text), limit)
            return WrittenPrompt(source, text, None, "raw", "raw", "sent as is", None, "none", target.prompt_style,
                                 kind, limit, False, False, self.seed, None, 0.0)
        if self.is_llm:
            prompt, instructions, cost = self._llm(source, target, kind, preset, style_text)
            version = LLM_VERSION
        else:
            prompt = template_prompt(source, target.prompt_style, kind, limit, preset, style_text, symbolic)
            instructions = ("template: subject first, then the style preset's style, lighting and composition"
                            + (" and camera motion" if kind == "video" else "") + "; nothing else added")
            cost = 0.0
            version = TEMPLATE_VERSION
        return WrittenPrompt(source, prompt, negative, self.model, version, instructions,
                             preset.name if preset else style_text, style_kind, target.prompt_style, kind, limit,
                             True, symbolic, self.seed, self.temperature if self.is_llm else None, cost)

    def _style(self, style: str | None) -> tuple[StylePreset | None, str | None, Literal["preset", "free", "none"]]:
        if not style or not style.strip():
            return None, None, "none"
        style = style.strip()
        if style in self.config.styles:
            return self.config.styles[style], None, "preset"
        if re.search(r"[\s,]", style):
            return None, _clean(style), "free"
        self.config.style(style)  # raises: an unknown single word is most likely a typo
        raise AssertionError("unreachable")  # pragma: no cover

    def _llm(self, source: Source, target: GeneratorFacts, kind: str, preset: StylePreset | None,
             style_text: str | None) -> tuple[str, str, float | None]:
        from ..chat import Conversation
        from ..providers.base import Options

        limit = target.max_prompt_chars
        instructions = LLM_INSTRUCTIONS.format(kind=kind, limit=limit, format=FORMATS[target.prompt_style],
                                               motion=" and camera movement" if kind == "video" else "")
        lines = [f"Source ({source.kind}):"]
        if source.kind == "headlines":
            if source.caption:
                lines.append(f"Theme: {source.caption}")
            lines += [f"- {h}" for h in source.headlines]
        else:
            lines.append(source.text)
        if preset:
            lines.append(f"Style: {preset.style}. Lighting: {preset.lighting}. Composition: {preset.composition}.")
            if kind == "video" and preset.motion:
                lines.append(f"Camera movement: {preset.motion}.")
        elif style_text:
            lines.append(f"Style: {style_text}.")
        max_tokens = max(64, min(1024, limit // 3 + 32))
        chat = Conversation((), model=self.model, system=instructions, config=self.config,
                            options=Options(temperature=self.temperature, seed=self.seed,
                                            max_output_tokens=max_tokens))
        answer = chat.ask("\n".join(lines))
        prompt = _tidy(answer.text)
        if not prompt:
            raise BadResponseError("the prompt writer returned an empty prompt", provider=chat.model.provider,
                                   model=chat.model.model_id)
        if len(prompt) > limit:
            log.warning("the writer's prompt has %d characters; cut to the generator's %d", len(prompt), limit)
            prompt = _cut(prompt, limit)
        return prompt, instructions, answer.usage.cost_usd


def _tidy(text: str) -> str:
    text = text.strip()
    text = re.sub(r"^(?:prompt|here is the prompt)\s*:\s*", "", text, flags=re.I)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1]
    return _clean(text)


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.-")


def _subject(source: Source, prompt_style: str) -> tuple[str, list[str]]:
    """The subject's lead-in and its items (headlines are dropped from the end to fit)."""
    if source.kind == "headlines":
        theme = source.caption or "the news"
        lead = (f"symbolic allegorical scene evoking {theme}: " if prompt_style == "diffusion"
                else f"A symbolic, allegorical scene evoking {theme}: ")
        return lead, [symbolise(h) for h in source.headlines]
    text = symbolise(source.text.rstrip("."))
    if prompt_style == "prose":
        text = text[:1].upper() + text[1:]
    return "", [text]


def template_prompt(source: Source, prompt_style: str, kind: str, limit: int, preset: StylePreset | None,
                    style_text: str | None, symbolic: bool) -> str:
    """The deterministic template writer (see the module docstring)."""
    lead, items = _subject(source, prompt_style)
    style = preset.style if preset else style_text
    lighting = preset.lighting if preset else ""
    composition = preset.composition if preset else ""
    motion = preset.motion if preset and kind == "video" else ""
    diffusion = prompt_style == "diffusion"

    def subject(n: int) -> str:
        return lead + "; ".join(items[:n])

    def build(n: int, extras: int) -> str:
        if diffusion:
            parts = [subject(n)]
            if symbolic:
                parts.append(SYMBOLIC_DIFFUSION)
            parts += [style, lighting, composition, motion and f"camera: {motion}"][:extras]
            return ", ".join(p for p in parts if p)
        sentences = [f"{subject(n)}."]
        optional = [f"Style: {style}." if style else "", f"Lighting: {lighting}." if lighting else "",
                    f"Composition: {composition}." if composition else "",
                    f"Camera: {motion}." if motion else ""][:extras]
        if symbolic:
            sentences.append(SYMBOLIC_PROSE)
        sentences += [s for s in optional if s]
        sentences.append(ADD_NOTHING_PROSE)
        return " ".join(sentences)

    # Fit under the limit: drop motion, composition and lighting, then headlines from the end (keeping
    # the style), then the style, then cut the one subject left at a word boundary.
    for extras in range(4, 0, -1):
        text = build(len(items), extras)
        if len(text) <= limit:
            return text
    for n in range(len(items) - 1, 0, -1):
        text = build(n, 1)
        if len(text) <= limit:
            return text
    text = build(1, 0)
    return text if len(text) <= limit else _cut(text, limit)
