"""The fixtures users load with ``pytest_plugins = ["vision.testing.fixtures"]``."""

from __future__ import annotations

import vision
from vision.testing import FakeServer

pytest_plugins = ["vision.testing.fixtures"]


def test_user_fixture_wires_the_environment(vision_fake_env: FakeServer, photo_path: object) -> None:
    answer = vision.ask(photo_path, "from a user's test?", model="openai/gpt-4.1-mini", history=False)
    assert "from a user's test?" in answer.text  # type: ignore[union-attr]
    assert vision_fake_env.requests[-1].model == "gpt-4.1-mini"
