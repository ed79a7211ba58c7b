"""Redaction: personal data out of stored telemetry and exports (`Redactor`, kinds in `CXA_TELEMETRY__REDACT`),
payment data and credentials a customer types out of everything but the audit copy (`mask_payment_data`), and our
own secrets out of prompts and replies (`Secrets`).

`Redactor` kinds:

- email: anything@domain.tld
- card: 13-19 digits (spaces or dashes allowed) that pass the Luhn check
- account: IBANs, and runs of 8+ digits that are not a card (account, sort-code+account, policy numbers)
- phone: international or national numbers of 7+ digits with the usual separators
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
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


_IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CODE_WORD = (
    r"(?:(?:one[- ]time|verification|security|confirmation|auth(?:entication)?|2fa|sms|login|access) ?(?:code|pin)"
    r"|code|otp|passcode|pin|cvv2?|cvc2?|csc)"
)
# "code 482913", "OTP: 1234", and "the code they texted me is 482913" (a few words between, then is/was/:)
_CODE = re.compile(
    rf"\b{_CODE_WORD}\b(?:[^.\n\d]{{0,30}}?\b(?:is|was)\b|\s*[:#=])?\s*[:#=]?\s*(\d(?:[ -]?\d){{2,18}})\b", re.I
)
_PASSWORD = re.compile(
    r"\b(?:password|passwd|pwd|pass ?phrase|passcode)\b(?:\s+(?:is|was|=|:)|\s*[:=])\s*[\"'“‘]?([^\s\"'”’]+)",
    re.I,
)


def _iban_ok(candidate: str) -> bool:
    """ISO 13616: move the country and check digits to the end, letters to numbers, mod 97 == 1."""
    s = candidate.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def _mask_card(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return f"[card ending {digits[-4:]}]"
    return m.group(0)


def _mask_iban(m: re.Match[str]) -> str:
    raw = m.group(0)
    return f"[IBAN ending {raw.replace(' ', '')[-4:]}]" if _iban_ok(raw) else raw


def _mask_group(label: str) -> Callable[[re.Match[str]], str]:
    def mask(m: re.Match[str]) -> str:
        start, end = m.span(1)
        whole = m.group(0)
        return whole[: start - m.start()] + label + whole[end - m.start() :]

    return mask


def mask_payment_data(text: str) -> str:
    """`text` with what a customer should never have to send us masked: card numbers (Luhn-valid) and IBANs
    (valid check digits) to their last four (`[card ending 1111]`, `[IBAN ending 0000]`: what an agent or an audit
    needs to tell which one), one-time codes, PINs, CVVs and passwords whole (`[code]`, `[password]`: four
    characters of those are most of the secret)."""
    if not text:
        return text
    text = _CARD.sub(_mask_card, text)
    text = _IBAN_CANDIDATE.sub(_mask_iban, text)
    text = _PASSWORD.sub(_mask_group("[password]"), text)
    return _CODE.sub(_mask_group("[code]"), text)


def mask_payment_data_in(value: Any) -> Any:
    """`mask_payment_data` on every string inside dicts and lists."""
    if isinstance(value, str):
        return mask_payment_data(value)
    if isinstance(value, dict):
        return {k: mask_payment_data_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_payment_data_in(v) for v in value]
    return value


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


class Secrets:
    """The credentials we hold (configured or generated), to find in and take out of text: every prompt (the chat
    gateway) and every reply (the output guard). A secret of 8 characters or more is matched wherever it occurs; a
    shorter one (a developer's on loopback: `cxa serve` refuses secrets under 16 characters elsewhere) only as a
    whole word, so a 4-letter token does not take every word it is part of with it."""

    WHOLE_WORD_BELOW = 8
    REPLACEMENT = "[redacted]"

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._short: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        self._values |= {v for v in values if v and v.strip()}
        short = sorted((v for v in self._values if len(v) < self.WHOLE_WORD_BELOW), key=len, reverse=True)
        self._short = (
            re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(v) for v in short) + r")(?![\w-])") if short else None
        )

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def found_in(self, text: str) -> bool:
        if any(v in text for v in self._values if len(v) >= self.WHOLE_WORD_BELOW):
            return True
        return bool(self._short and self._short.search(text))

    def redact(self, text: str) -> str:
        for v in sorted(self._values, key=len, reverse=True):
            if len(v) >= self.WHOLE_WORD_BELOW and v in text:
                text = text.replace(v, self.REPLACEMENT)
        return self._short.sub(self.REPLACEMENT, text) if self._short else text
