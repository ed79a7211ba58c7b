"""A customer's proof of identity (API.md "Auth"): `customer_hash` is the hex HMAC-SHA256 of the customer id under
the identity secret. The host page computes it on its server; the API checks it (`api.security.Keys`), and the
evals and tests compute it as a host page would, all with this one function."""

from __future__ import annotations

import hashlib
import hmac


def customer_hash(secret: str, customer_id: str) -> str:
    """The hex HMAC-SHA256 of `customer_id` under `secret` (lower case, 64 characters)."""
    return hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).hexdigest()


_TOKEN_KEY = b"cx-assistant conversation token v1"


def conversation_token(secret: str, conversation_id: str) -> str:
    """The token that opens one conversation (`X-Conversation-Token`): the hex HMAC-SHA256 of its id under a key
    derived from `secret`, so it is never a `customer_hash` (a customer id equal to a conversation id) and needs
    no storage: every worker and server holding the secret can check it."""
    key = hmac.new(secret.encode(), _TOKEN_KEY, hashlib.sha256).digest()
    return hmac.new(key, conversation_id.encode(), hashlib.sha256).hexdigest()
