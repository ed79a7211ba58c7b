"""Fixtures for the fault tests: the fake OpenAI-compatible server, and the real app pointed at it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.faults.fake_openai import FakeOpenAI
from tests.faults.support import openai_settings


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def openai_client(
    fake_openai: FakeOpenAI, sample_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The real app, its chat provider the fake server (one app for the module: each test its own conversation)."""
    data = tmp_path_factory.mktemp("faults") / "data"
    shutil.copytree(sample_template, data)
    with TestClient(create_app(openai_settings(data, fake_openai.url))) as c:
        yield c
