"""Shared by the fault tests: the settings that point the app at the fake chat server, and the bounds."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from tests.conftest import make_settings

TIMEOUT_S = 1.0  # CXA_OPENAI__TIMEOUT_S in these tests
RETRIES = 1  # CXA_OPENAI__MAX_RETRIES
MAX_RETRY_WAIT_S = 0.5  # CXA_OPENAI__MAX_RETRY_WAIT_S
# The longest a faulty model may hold a turn: every attempt times out, with the backoff between them.
TURN_BOUND_S = (RETRIES + 1) * TIMEOUT_S + RETRIES * MAX_RETRY_WAIT_S + 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def openai_settings(data_dir: Path, base_url: str, **overrides: Any) -> Any:
    return make_settings(
        data_dir,
        chat_provider="openai",
        openai={
            "base_url": base_url,
            "model": "fake",
            "timeout_s": TIMEOUT_S,
            "max_retries": RETRIES,
            "max_retry_wait_s": MAX_RETRY_WAIT_S,
        },
        **overrides,
    )
