"""The README's examples run, so they cannot drift: Python blocks are executed, and the command-line
blocks run line by line against the fake server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vision.testing import FakeServer

from .conftest import ASSETS, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list[tuple[str, str]]:
    """(section heading, code) for every fenced block of ``lang``."""
    out = []
    heading = ""
    for part in re.split(r"(?m)^(#{1,3} .*)$", README):
        if part.startswith("#"):
            heading = part.lstrip("# ").strip()
            continue
        out += [(heading, m.group(1)) for m in re.finditer(rf"```{lang}\n(.*?)```", part, re.S)]
    return out


PYTHON_BLOCKS = blocks("python")


@pytest.mark.parametrize("code", [c for _, c in PYTHON_BLOCKS], ids=[f"python-{i}" for i in range(len(PYTHON_BLOCKS))])
def test_python_examples_run(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_the_two_setup_commands_come_first() -> None:
    first = blocks("bash")[0][1].splitlines()
    assert first[0].startswith("./dev.sh demo") and first[1].startswith("./dev.sh test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev.sh test" in ci


def _command_lines(section: str) -> list[str]:
    code = next(c for h, c in blocks("bash") if h == section)
    lines = []
    for line in code.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if "vision " in line and not line.startswith(("python -m vision.testing", "export")):
            lines.append(line)
    return lines


@pytest.fixture
def shell_env(fake: FakeServer, tmp_path: Path) -> dict[str, str]:
    for name in ("photo.jpg", "a.jpg", "b.jpg", "label.jpg"):
        shutil.copy(ASSETS / "book_photo.jpg", tmp_path / name)
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "GEMINI_"))}
    env.update(PATH=f"{bindir}:{env.get('PATH', '')}", OPENAI_BASE_URL=fake.openai_base_url,
               OPENAI_API_KEY="sk-readme", GEMINI_BASE_URL=fake.openai_base_url, GEMINI_API_KEY="g-readme",
               REPLICATE_BASE_URL=fake.replicate_base_url, REPLICATE_API_TOKEN="r8_readme")
    if not shutil.which("vision", path=env["PATH"]):
        pytest.skip("the `vision` console script is not installed in this environment (pip install -e .)")
    return env


@pytest.mark.parametrize("section", ["Command line", "Testing against the fake servers", "Receipts and labels",
                                     "Batches: many files, one machine or a cluster"])
def test_command_line_examples_run(section: str, shell_env: dict[str, str], tmp_path: Path) -> None:
    lines = _command_lines(section)
    assert len(lines) >= 2
    (tmp_path / "assets").symlink_to(ASSETS)
    for line in lines:
        cwd = ROOT if section == "Testing against the fake servers" else tmp_path
        result = subprocess.run(["bash", "-c", line], cwd=cwd, env=shell_env, capture_output=True, text=True,
                                input="/quit\n", timeout=60, check=False)
        assert result.returncode == 0, f"{line}\n{result.stderr}"
