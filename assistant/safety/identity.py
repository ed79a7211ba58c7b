"""A customer's proof of identity (API.md "Auth"): `customer_hash` is the hex HMAC-SHA256 of the customer id under
the identity secret. The host page computes it on its server; the API checks it (`api.security.Keys`), and the
evals and tests compute it as a host page would, all with this one function."""

from __future__ import annotations

import hashlib
import hmac


def customer_hash(secret: str, customer_id: str) -> str:
    """The hex HMAC-SHA256 of `customer_id` under `secret` (lower case, 64 characters)."""
    return hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).hexdigest()
