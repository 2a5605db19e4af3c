"""Shared fixtures: an isolated environment, the fake API server, generated images."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from vision.config import reload_config
from vision.testing import FakeServer

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
SHARED_DATA = ROOT.parent / "shared" / "data"

_SCRUB = [
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "REPLICATE_POLL_INTERVAL",
    "GEMINI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY", "OLLAMA_BASE_URL", "VLLM_BASE_URL",
    "LLAMACPP_BASE_URL", "LMSTUDIO_BASE_URL", "VISION_MODEL", "VISION_TIMEOUT", "VISION_MAX_RETRIES",
    "VISION_HISTORY", "VISION_CACHE", "VISION_BUDGET_USD", "VISION_CONFIG", "VISION_DATA_DIR",
]

TESSERACT = shutil.which("tesseract") is not None


def has_rapidocr() -> bool:
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own data dir and config path, and no real keys or endpoints."""
    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "vision-data"
    monkeypatch.setenv("VISION_DATA_DIR", str(data))
    monkeypatch.setenv("VISION_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("VISION_MAX_RETRIES", "2")
    monkeypatch.setenv("VISION_TIMEOUT", "20")
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.02")
    reload_config()
    yield data
    reload_config()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def api_env(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """The fake server wired in through the same variables a user would set."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    monkeypatch.setenv("REPLICATE_BASE_URL", fake.replicate_base_url)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_test0123456789abcdef")
    monkeypatch.setenv("OLLAMA_BASE_URL", fake.openai_base_url)
    reload_config()
    return fake


def jpeg_bytes(width: int = 640, height: int = 480, *, quality: int = 90, exif_orientation: int | None = None,
               seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = np.zeros((height, width, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    arr[..., 2] = rng.integers(0, 255, (height, width), dtype=np.uint8) // 4
    img = Image.fromarray(arr)
    bio = io.BytesIO()
    kwargs: dict = {"quality": quality}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    img.save(bio, format="JPEG", **kwargs)
    return bio.getvalue()


def text_image(lines: list[str], *, size: int = 48, width: int = 1000, pad: int = 40,
               fg: str = "black", bg: str = "white") -> Image.Image:
    font = ImageFont.load_default(size=size)
    height = pad * 2 + int(len(lines) * size * 1.5)
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((pad, pad + int(i * size * 1.5)), line, font=font, fill=fg)
    return img


@pytest.fixture
def photo_path(tmp_path: Path) -> Path:
    p = tmp_path / "photo.jpg"
    p.write_bytes(jpeg_bytes(1600, 1200))
    return p
