"""pytest fixtures for your own tests: ``pytest_plugins = ["vision.testing.fixtures"]`` in a conftest.

* ``vision_fake_server``: a running :class:`~vision.testing.FakeServer` (stopped after the test);
* ``vision_fake_env``: the same server wired in through ``OPENAI_BASE_URL``, ``REPLICATE_BASE_URL``
  and test keys, so code that reads the environment (the CLI, ``vision.ask``) talks to it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import FakeServer


@pytest.fixture
def vision_fake_server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def vision_fake_env(vision_fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    from ..config import reload_config

    monkeypatch.setenv("OPENAI_BASE_URL", vision_fake_server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-server")
    monkeypatch.setenv("REPLICATE_BASE_URL", vision_fake_server.replicate_base_url)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_testfakeserver")
    reload_config()
    yield vision_fake_server
    reload_config()
