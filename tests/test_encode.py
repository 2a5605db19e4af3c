"""Provider token rules against hand-computed counts, and the planner built on them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vision.config import ModelFacts, get_config
from vision.encode import EncodedImage, RequestPlan, TokenRule, encode_image, estimate_text_tokens
from vision.frame import Frame


def rule(kind: str, **kw: object) -> TokenRule:
    return TokenRule(ModelFacts(match="*", rule=kind, **kw))  # type: ignore[arg-type]


TILE = rule("openai-tile")
MINI_TILE = rule("openai-tile", base_tokens=2833, tile_tokens=5667)
PATCH = rule("openai-patch", multiplier=1.62)
PATCH_1X = rule("openai-patch", multiplier=1.0)
CLAUDE = rule("anthropic")
GEMINI = rule("gemini")
QWEN = rule("qwen", patch=28, max_pixels=1_003_520)
FIXED = rule("fixed", tokens=576, side=336)


@pytest.mark.parametrize(
    ("r", "w", "h", "detail", "expected"),
    [
        # OpenAI tile models, worked examples from OpenAI's vision guide
        (TILE, 1024, 1024, "high", 85 + 170 * 4),  # -> 768x768, 2x2 tiles = 765
        (TILE, 2048, 4096, "high", 85 + 170 * 6),  # -> 1024x2048 -> 768x1536, 2x3 tiles = 1105
        (TILE, 4096, 8192, "low", 85),
        (TILE, 512, 512, "high", 85 + 170),
        (TILE, 513, 512, "high", 85 + 170 * 2),
        (MINI_TILE, 1024, 1024, "high", 2833 + 5667 * 4),  # gpt-4o-mini bills ~33x
        # OpenAI patch models: 1024x1024 is 1024 patches; 1800x2400 shrinks to 1056x1408 = 33x44 patches
        (PATCH_1X, 1024, 1024, "high", 1024),
        (PATCH_1X, 1800, 2400, "high", 1452),
        (PATCH, 1024, 1024, "high", math.ceil(1024 * 1.62)),
        (PATCH, 1800, 2400, "high", math.ceil(1452 * 1.62)),
        (PATCH, 1800, 2400, "low", math.ceil(1452 * 1.62)),  # detail=low does not apply to patch models
        # Anthropic: w*h/750 (examples from Anthropic's vision guide)
        (CLAUDE, 200, 200, "high", 54),
        (CLAUDE, 1000, 1000, "high", 1334),
        (CLAUDE, 1092, 1092, "high", 1590),
        # Gemini: 258 for small images, else crop units of min(w,h)/1.5
        (GEMINI, 384, 384, "high", 258),
        (GEMINI, 1024, 1024, "high", 258 * 4),  # unit 682 -> 2x2
        (GEMINI, 1920, 1080, "high", 258 * 6),  # unit 720 -> 3x2
        # Qwen-style: 28 px patches after smart resize
        (QWEN, 1000, 700, "high", 36 * 25),  # -> 1008x700
        (QWEN, 4032, 3024, "high", 41 * 30),  # capped at max_pixels -> 1148x840
        (FIXED, 4032, 3024, "high", 576),
    ],
)
def test_token_rules_hand_computed(r: TokenRule, w: int, h: int, detail: str, expected: int) -> None:
    assert r.tokens(w, h, detail) == expected  # type: ignore[arg-type]


def test_provider_sizes() -> None:
    assert TILE.provider_size(4032, 3024) == (1024, 768)
    assert PATCH_1X.provider_size(1800, 2400) == (1056, 1408)
    w, h = CLAUDE.provider_size(4032, 3024)
    assert max(w, h) <= 1568 and w * h <= 1_200_000
    assert QWEN.provider_size(4032, 3024) == (1148, 840)
    assert FIXED.provider_size(4032, 3024) == (336, 252)


@pytest.mark.parametrize("r", [TILE, MINI_TILE, PATCH, CLAUDE, GEMINI, QWEN, FIXED, rule("unknown")])
@pytest.mark.parametrize("size", [(4032, 3024), (1920, 1080), (3024, 4032), (640, 480), (300, 200), (800, 20000)])
def test_planned_size_never_costs_more_than_sending_the_original(r: TokenRule, size: tuple[int, int]) -> None:
    w, h = size
    naive = r.tokens(w, h, "high")
    for detail in ("low", "auto", "high"):
        tw, th = r.target_size(w, h, detail, 768)  # type: ignore[arg-type]
        assert tw <= w and th <= h, "never upscaled"
        assert r.tokens(tw, th, detail) <= naive  # type: ignore[arg-type]
    low = r.tokens(*r.target_size(w, h, "low", 768), "low")
    auto = r.tokens(*r.target_size(w, h, "auto", 768), "auto")
    high = r.tokens(*r.target_size(w, h, "high", 768), "high")
    assert low <= auto <= high


def test_high_detail_keeps_what_the_provider_keeps() -> None:
    assert TILE.target_size(4032, 3024, "high", 768) == (1024, 768)
    assert TILE.tokens(1024, 768, "high") == 765


def test_snap_drops_a_tile_row_for_a_small_shrink() -> None:
    # 768x576 needs 2x2 tiles; 683x512 (11% smaller) needs 2x1: 425 tokens instead of 765
    assert TILE.target_size(4032, 3024, "auto", 768) == (683, 512)
    assert TILE.tokens(683, 512, "auto") == 425
    # area-billed rules gain nothing from shrinking, so they do not snap
    assert CLAUDE.target_size(4032, 3024, "auto", 768) == (768, 576)


def test_wire_detail_is_always_explicit_for_tile_models() -> None:
    assert TILE.wire_detail("auto") == "high"
    assert TILE.wire_detail("low") == "low"
    assert PATCH.wire_detail("auto") is None


def _frame(w: int, h: int) -> Frame:
    rng = np.random.default_rng(1)
    return Frame.from_array(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), source="test")


def test_encode_image_produces_jpeg_of_planned_size() -> None:
    frame = _frame(1600, 1200)
    enc = encode_image(frame, TILE, detail="auto")
    assert isinstance(enc, EncodedImage)
    assert enc.data[:3] == b"\xff\xd8\xff"
    assert (enc.width, enc.height) == TILE.target_size(1600, 1200, "auto", 768)
    assert Frame.from_bytes(enc.data).size == (enc.width, enc.height)
    assert enc.data_url.startswith("data:image/jpeg;base64,")
    assert enc.tokens == TILE.tokens(enc.width, enc.height, "auto")
    assert encode_image(frame, TILE, detail="auto") is enc, "memoised for follow-ups"


def test_encode_crop() -> None:
    enc = encode_image(_frame(1600, 1200), CLAUDE, detail="high", crop=(100, 100, 500, 400))
    assert (enc.width, enc.height) == (400, 300)
    assert enc.crop == (100, 100, 500, 400)


def test_request_plan_costs() -> None:
    enc = encode_image(_frame(800, 600), CLAUDE, detail="auto")
    plan = RequestPlan(model="x/y", images=[enc], text_tokens=10, max_output_tokens=100,
                       input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
    assert plan.input_tokens == enc.tokens + 10
    assert plan.input_cost_usd == pytest.approx(plan.input_tokens * 3.0 / 1e6)
    assert plan.max_cost_usd == pytest.approx(plan.input_cost_usd + 100 * 15.0 / 1e6)
    unknown = RequestPlan(model="x/y", images=[enc], text_tokens=10, max_output_tokens=100,
                          input_usd_per_mtok=None, output_usd_per_mtok=None)
    assert unknown.input_cost_usd is None and unknown.max_cost_usd is None
    free = RequestPlan(model="x/y", images=[enc], text_tokens=10, max_output_tokens=100,
                       input_usd_per_mtok=None, output_usd_per_mtok=None, free=True)
    assert free.max_cost_usd == 0.0
    assert plan.to_dict()["images"][0]["sent_size"] == [enc.width, enc.height]


def test_model_table_rules() -> None:
    config = get_config()
    assert config.facts("openai", "gpt-4.1-mini").rule == "openai-patch"
    assert config.facts("openai", "gpt-4.1").rule == "openai-tile"
    assert config.facts("openai", "gpt-4o-mini").base_tokens == 2833
    assert config.facts("anthropic", "claude-sonnet-4-5").rule == "anthropic"
    assert config.facts("gemini", "gemini-2.5-flash").rule == "gemini"
    assert config.facts("ollama", "qwen2.5vl:7b").rule == "qwen"
    assert config.facts("openrouter", "openai/gpt-4.1-mini").rule == "openai-patch"
    assert config.facts("replicate", "yorickvp/llava-13b").usd_per_second is not None
    unknown = config.facts("vllm", "totally-new-model")
    assert unknown.rule == "unknown" and unknown.input_usd_per_mtok is None
    assert not config.facts("openai", "gpt-3.5-turbo").vision


def test_text_token_estimate() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("abcd" * 10) == 10
