"""Redaction of personal data from stored telemetry and exports (the transcript itself is kept as written,
for the agent). Which kinds are redacted is `CXA_TELEMETRY__REDACT`.

- email: anything@domain.tld
- card: 13-19 digits (spaces or dashes allowed) that pass the Luhn check
- account: IBANs, and runs of 8+ digits that are not a card (account, sort-code+account, policy numbers)
- phone: international or national numbers of 7+ digits with the usual separators
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_LONG_DIGITS = re.compile(r"(?<![\w-])\d{8,}(?![\w-])")
_PHONE = re.compile(r"(?<![\w-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?![\w-])")


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and _luhn(digits) else m.group(0)


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")


def _phone(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    if _DATE.fullmatch(m.group(0).strip()):
        return m.group(0)
    return "[phone]" if 7 <= len(digits) <= 15 else m.group(0)


class Redactor:
    def __init__(self, kinds: Iterable[str] = ("email", "phone", "card", "account")) -> None:
        self.kinds = frozenset(kinds)

    def text(self, value: str) -> str:
        if "email" in self.kinds:
            value = _EMAIL.sub("[email]", value)
        if "card" in self.kinds:
            value = _CARD.sub(_card, value)
        if "account" in self.kinds:
            value = _IBAN.sub("[account]", value)
            value = _LONG_DIGITS.sub("[account]", value)
        if "phone" in self.kinds:
            value = _PHONE.sub(_phone, value)
        return value

    def data(self, value: Any) -> Any:
        """Strings anywhere inside dicts and lists, redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value
