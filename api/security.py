"""Credentials and roles (API.md "Auth").

Keys come from settings (`CXA_WIDGET_KEY`, `CXA_AGENT_TOKEN`, ...) or are generated on first start
and kept in `<data_dir>/keys.json` (mode 0600), so the server never runs keyless. Tokens are
compared in constant time. A customer is *verified* only when `customer_hash` is the hex
HMAC-SHA256 of their id under the identity secret; anyone else is anonymous.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from assistant.safety import identity
from assistant.settings import Settings

logger = logging.getLogger(__name__)

Role = Literal["widget", "agent", "cx", "admin"]
_FIELDS = ("widget_key", "agent_token", "cx_token", "admin_token", "identity_secret")


@dataclass(frozen=True)
class Keys:
    widget_key: str
    agent_token: str
    cx_token: str
    admin_token: str
    identity_secret: str
    generated: tuple[str, ...] = ()
    path: Path | None = None

    def role_of(self, bearer: str) -> Role | None:
        for role, token in (("admin", self.admin_token), ("agent", self.agent_token), ("cx", self.cx_token)):
            if bearer and hmac.compare_digest(bearer.encode(), token.encode()):
                return role  # type: ignore[return-value]
        return None

    def widget_ok(self, key: str | None) -> bool:
        return bool(key) and hmac.compare_digest(key.encode(), self.widget_key.encode())  # type: ignore[union-attr]

    def customer_hash(self, customer_id: str) -> str:
        return identity.customer_hash(self.identity_secret, customer_id)

    def conversation_token(self, conversation_id: str) -> str:
        return identity.conversation_token(self.identity_secret, conversation_id)

    def conversation_ok(self, conversation_id: str, token: str | None) -> bool:
        """Does `token` open this conversation? (Constant time; bytes, as for `verify_customer`.)"""
        if not token:
            return False
        return hmac.compare_digest(self.conversation_token(conversation_id).encode(), token.strip().encode())

    def verify_customer(self, customer_id: str | None, customer_hash: str | None) -> bool:
        if not customer_id or not customer_hash:
            return False
        # bytes, not str: compare_digest refuses non-ASCII strings (a TypeError, i.e. a 500, found by fuzzing)
        return hmac.compare_digest(self.customer_hash(customer_id).encode(), customer_hash.strip().lower().encode())


def load_keys(settings: Settings) -> Keys:
    """Configured keys win; missing ones are read from, or generated into, `<data_dir>/keys.json`."""
    path = settings.data_dir / "keys.json"
    stored: dict[str, str] = {}
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RuntimeError(f"{path} is unreadable ({exc}); delete it to generate new keys") from exc
    values: dict[str, str] = {}
    generated: list[str] = []
    for name in _FIELDS:
        configured = getattr(settings, name)
        if configured is not None:
            values[name] = configured.get_secret_value()
        elif stored.get(name):
            values[name] = stored[name]
        else:
            values[name] = ("pk_" if name == "widget_key" else "") + secrets.token_urlsafe(24)
            generated.append(name)
    if generated:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        keep = {n: v for n, v in values.items() if getattr(settings, n) is None}
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(keep, fh, indent=2)
        tmp.replace(path)
        logger.info("generated credentials %s in %s", ", ".join(generated), path)  # names only, never values
    return Keys(**values, generated=tuple(generated), path=path)
