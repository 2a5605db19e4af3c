"""The prompt writer: subject kept, only style added, symbolic news, prompt limits, raw mode, sources."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vision.bridge.generators import GenerationRequest, get_generator
from vision.bridge.writer import (
    ADD_NOTHING_PROSE,
    LLM_VERSION,
    SYMBOLIC_DIFFUSION,
    SYMBOLIC_PROSE,
    TEMPLATE_VERSION,
    PromptWriter,
    caption_source,
    headlines_source,
    image_source,
    read_headlines,
)
from vision.config import GeneratorFacts, get_config
from vision.errors import ConfigurationError, DocumentError, PromptTooLongError
from vision.testing import FakeServer

from .conftest import jpeg_bytes

DIFFUSION = GeneratorFacts(match="test/diffusion", kind="image", prompt_style="diffusion", max_prompt_chars=1500)
PROSE = GeneratorFacts(match="test/prose", kind="image", prompt_style="prose", max_prompt_chars=4000)
FIXED_WORDS = " ".join([SYMBOLIC_DIFFUSION, SYMBOLIC_PROSE, ADD_NOTHING_PROSE,
                        "Style Lighting Composition Camera camera",
                        "a symbolic allegorical scene evoking figure symbolising the"])


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]*", text)}


def test_the_required_style_presets_exist() -> None:
    assert {"photo", "cyberpunk", "watercolour", "comic", "poster", "isometric"} <= set(get_config().styles)


@pytest.mark.parametrize("style", sorted(get_config().styles))
@pytest.mark.parametrize("target", [DIFFUSION, PROSE], ids=["diffusion", "prose"])
@pytest.mark.parametrize("kind", ["image", "video"])
def test_template_keeps_the_subject_and_adds_only_style(style: str, target: GeneratorFacts, kind: str) -> None:
    caption = "an old wooden boat on a quiet lake"
    written = PromptWriter("template").write(caption_source(caption), target, style=style, kind=kind)  # type: ignore[arg-type]
    preset = get_config().styles[style]
    assert caption.lower() in written.prompt.lower(), "the subject is kept, word for word"
    allowed = words(caption) | words(preset.style + " " + preset.lighting + " " + preset.composition) | words(
        FIXED_WORDS) | (words(preset.motion) if kind == "video" else set())
    added = words(written.prompt) - allowed
    assert not added, f"the writer added words that are neither the subject nor the style: {added}"
    assert preset.style in written.prompt and preset.lighting in written.prompt
    assert (preset.motion in written.prompt) == (kind == "video")
    if target.prompt_style == "diffusion":
        assert written.prompt.startswith(caption + ", "), "diffusion prompts lead with the subject, comma-separated"
    else:
        assert written.prompt.startswith("An old wooden boat on a quiet lake. "), "prose: full sentences"
    assert written.writer == "template" and written.prompt_version == TEMPLATE_VERSION
    assert written.expanded and written.source.caption == caption


def test_news_and_public_figures_are_symbolic() -> None:
    source = headlines_source(["President Jane Doe opens the new solar farm", "Flood waters rise in the valley"],
                              caption="today's headlines")
    for target in (DIFFUSION, PROSE):
        written = PromptWriter("template").write(source, target, style="cyberpunk")
        assert written.symbolic
        assert "Jane Doe" not in written.prompt, "no real person is named to the generator"
        assert "a figure symbolising the president opens the new solar farm" in written.prompt
        assert "Flood waters rise in the valley" in written.prompt
        assert (SYMBOLIC_DIFFUSION if target is DIFFUSION else SYMBOLIC_PROSE) in written.prompt
        assert "today's headlines" in written.prompt


def test_prompts_stay_under_the_generator_limit() -> None:
    headlines = [f"Headline number {i} about an important long running story in the region" for i in range(40)]
    source = headlines_source(headlines, caption="the news", limit=40)
    for limit in (2000, 400, 120, 30):
        target = GeneratorFacts(match="t", prompt_style="diffusion", max_prompt_chars=limit)
        written = PromptWriter("template").write(source, target, style="watercolour")
        assert len(written.prompt) <= limit
        assert written.prompt.startswith("symbolic allegorical scene"[: limit - 1])
        if limit >= 400:
            assert "Headline number 0" in written.prompt and "loose watercolour painting" in written.prompt
            assert "Headline number 39" not in written.prompt, "headlines dropped from the end to fit"
    assert not re.search(r"\s$", written.prompt), "cut at a word boundary"


def test_raw_mode_sends_the_caption_as_is_and_keeps_the_model_rewriter() -> None:
    gen = get_generator("replicate/ideogram-ai/ideogram-v3-turbo", "image")
    raw = PromptWriter("template").write(caption_source("  a cat,  on a mat "), gen.facts, style="comic", raw=True)
    assert raw.prompt == "a cat, on a mat" and raw.writer == "raw" and not raw.expanded
    inputs = gen.build_input(GenerationRequest(raw.prompt, disable_rewriter=raw.expanded))
    assert "magic_prompt_option" not in inputs, "raw prompts leave the model's own rewriter at its default"
    with pytest.raises(PromptTooLongError, match="at most 2000"):
        PromptWriter("template").write(caption_source("word " * 500), gen.facts, raw=True)


@pytest.mark.parametrize(("model", "kind", "name", "off"), [
    ("replicate/ideogram-ai/ideogram-v3-turbo", "image", "magic_prompt_option", "Off"),
    ("replicate/black-forest-labs/flux-1.1-pro", "image", "prompt_upsampling", False),
    ("replicate/minimax/video-01", "video", "prompt_optimizer", False),
    ("replicate/minimax/hailuo-02", "video", "prompt_optimizer", False),
])
def test_an_expanded_prompt_switches_the_generator_rewriter_off(model: str, kind: str, name: str, off: object) -> None:
    gen = get_generator(model, kind)  # type: ignore[arg-type]
    written = PromptWriter("template").write(caption_source("a red kite"), gen.facts, style="poster")
    inputs = gen.build_input(GenerationRequest(written.prompt, disable_rewriter=written.expanded))
    assert inputs[name] == off
    assert any("rewriter switched off" in n for n in gen.notes)


def test_template_is_deterministic_and_styles_are_validated() -> None:
    writer = PromptWriter("template", seed=1)
    a = writer.write(caption_source("a lighthouse"), DIFFUSION, style="photo")
    b = writer.write(caption_source("a lighthouse"), DIFFUSION, style="photo")
    assert a == b
    free = writer.write(caption_source("a lighthouse"), DIFFUSION, style="art deco poster, gold and black")
    assert free.style_kind == "free" and free.prompt == "a lighthouse, art deco poster, gold and black"
    with pytest.raises(ConfigurationError, match=r"unknown style 'cyberpnk'.*cyberpunk"):
        writer.write(caption_source("a lighthouse"), DIFFUSION, style="cyberpnk")
    with pytest.raises(ValueError, match="caption is empty"):
        caption_source("   ")


def test_llm_writer_is_seeded_at_temperature_zero_and_cut_to_the_limit(api_env: FakeServer) -> None:
    api_env.script("A quiet harbour at dawn, watercolour washes, soft light. " * 3, times=None)
    target = GeneratorFacts(match="t", prompt_style="diffusion", max_prompt_chars=100)
    written = PromptWriter("openai/gpt-4.1-mini", seed=42).write(caption_source("a harbour"), target,
                                                               style="watercolour")
    body = api_env.requests_for("openai", "/v1/chat/completions")[-1].json
    assert body["temperature"] == 0 and body["seed"] == 42
    system = body["messages"][0]["content"]
    assert "Never add objects" in system and "symbolically" in system and "at most 100 characters" in system
    assert "Source (caption):\na harbour" in body["messages"][1]["content"]
    assert len(written.prompt) <= 100 and written.prompt.startswith("A quiet harbour at dawn")
    assert written.writer == "openai/gpt-4.1-mini" and written.prompt_version == LLM_VERSION
    assert written.instructions == system and written.seed == 42 and written.temperature == 0
    assert written.cost_usd is not None and written.cost_usd > 0


def test_local_engine_cannot_write_prompts() -> None:
    with pytest.raises(ConfigurationError, match="not a language model"):
        PromptWriter("local")


def test_a_photo_is_described_first_without_a_key(tmp_path: Path) -> None:
    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg_bytes(320, 240))
    source = image_source(photo, model="local")
    assert source.kind == "image" and source.describer == "local"
    assert source.description and "tones" in source.description
    written = PromptWriter("template").write(source, DIFFUSION, style="photo")
    assert written.prompt.startswith(source.description)


# -- headlines files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content"), [
    ("h.txt", "# today\n- Flood waters rise\n\n2. Markets rally\nFlood waters rise\n"),
    ("h.rss", "<?xml version='1.0'?><rss><channel><title>Feed</title><item><title>Flood waters rise</title></item>"
              "<item><title><![CDATA[Markets &amp; rally]]></title></item></channel></rss>"),
    ("h.atom", "<feed xmlns='http://www.w3.org/2005/Atom'><title>F</title><entry><title>Flood waters rise</title>"
               "</entry><entry><title>Markets rally</title></entry></feed>"),
    ("h.json", json.dumps(["Flood waters rise", "Markets rally"])),
    ("o.json", json.dumps({"articles": [{"title": "Flood waters rise"}, {"headline": "Markets rally"}]})),
])
def test_headlines_files(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    got = read_headlines(path)
    assert got[0] == "Flood waters rise" and got[1].replace("&", "").replace("  ", " ") == "Markets rally"
    assert len(got) == 2, "duplicates, comments and feed titles are left out"


def test_bad_headlines_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="no such headlines file"):
        read_headlines(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    with pytest.raises(DocumentError, match="no headlines found"):
        read_headlines(tmp_path / "empty.txt")
    (tmp_path / "bad.xml").write_text("<rss><item><title>unclosed</rss>")
    with pytest.raises(DocumentError, match="not a readable RSS"):
        read_headlines(tmp_path / "bad.xml")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DocumentError, match="not UTF-8"):
        read_headlines(tmp_path / "bin.txt")


def test_a_photo_is_described_by_the_llm_writer_model(api_env: FakeServer, tmp_path: Path) -> None:
    from vision.bridge import plan_imagine

    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg_bytes(640, 480))
    api_env.script("A green bicycle leaning on a red brick wall.")
    api_env.script("green bicycle against a red brick wall, graphic poster art")
    plan = plan_imagine(from_image=photo, writer_model="openai/gpt-4.1-mini", style="poster", seed=3)
    describe, write = api_env.requests_for("openai", "/v1/chat/completions")
    assert len(describe.images) == 1 and describe.json["temperature"] == 0 and describe.json["seed"] == 3
    assert not write.images and "A green bicycle leaning on a red brick wall." in write.text
    assert plan.source.describer == "openai/gpt-4.1-mini" and plan.source.image_sha256
    assert plan.image_prompt is not None and plan.image_prompt.prompt.startswith("green bicycle")


def test_users_add_generators_and_styles_in_their_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vision.config import reload_config

    cfg = tmp_path / "config.toml"
    cfg.write_text('[settings]\nimage_model = "replicate/acme/painter"\n\n'
                   '[[generators]]\nmatch = "acme/painter"\nprovider = "replicate"\nprompt_style = "prose"\n'
                   'max_prompt_chars = 300\nusd_per_image = 0.5\ninputs = { prompt = "text", seed = "noise_seed" }\n\n'
                   '[styles.noir]\nstyle = "film noir, black and white"\nlighting = "hard side light"\n')
    monkeypatch.setenv("VISION_CONFIG", str(cfg))
    reload_config()
    from vision.bridge import plan_imagine

    plan = plan_imagine("a detective's office", style="noir", seed=5)
    job = plan.jobs[0]
    assert job.generator.name == "replicate/acme/painter" and job.estimate_usd == 0.5
    assert job.inputs == {"text": plan.image_prompt.prompt, "noise_seed": 5}  # type: ignore[union-attr]
    assert "film noir, black and white" in job.inputs["text"] and job.inputs["text"].startswith("A detective's")
