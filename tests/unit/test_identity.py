"""`customer_hash` is the one spelling of API.md's "hex HMAC-SHA256(identity secret, customer_id)": the API checks
it and the tests and evals compute it with it, so it is pinned here to a published vector (RFC 4231, case 2) rather
than to a second copy of itself."""

from __future__ import annotations

from assistant.safety.identity import customer_hash


def test_customer_hash_is_hex_hmac_sha256_of_the_id_under_the_secret() -> None:
    assert customer_hash("Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
