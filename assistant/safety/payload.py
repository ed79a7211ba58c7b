"""Free-form JSON, in and out: what may be stored, and a serialiser that never fails on what is stored.

A caller's free-form JSON (a customer event's `data`, profile `attributes`, conversation `metadata`, review
`scores`...) is arbitrary by design, so it is where hostile input lands. Python's JSON parser accepts text that
nothing downstream does: a lone surrogate (`"\\udc80"`) cannot be encoded as UTF-8 (the response, SQLite's text,
a tokenizer and PostgreSQL's `json` all refuse it), `NaN`/`Infinity` are not JSON, and a structure 500 levels deep
exceeds pydantic's serialiser. One such value stored made every later read of it fail.

- `check(value, max_depth, max_bytes)` is the one validation: valid Unicode in every key and string, finite
  numbers, integers within 64 bits, at most `max_depth` levels and `max_bytes` of JSON. `FreeJSON` and `free_json`
  put it on a pydantic field; `api.limits` applies the Unicode, number and depth rules to every JSON request body.
- `scrub(value)` is the other side, for data already stored (or built from it): lone surrogates become U+FFFD,
  non-finite numbers null, anything deeper than `READ_DEPTH` a marker. It never raises, so a row stored before the
  validation existed cannot break a queue, a transcript or a turn. `dumps` is `json.dumps` over `scrub`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_DEPTH = 8  # a free-form field: nesting levels (an order's items list of objects is 3)
MAX_BYTES = 16_384  # a free-form field: bytes of its JSON
BODY_DEPTH = 32  # a whole request body
READ_DEPTH = 24  # what `scrub` keeps of stored data; pydantic's serialiser gives up near 255
TOO_DEEP = "[removed: nested too deeply]"
_INT64 = 2**63
_SURROGATE = re.compile("[\ud800-\udfff]")


class PayloadError(ValueError):
    """The JSON is not storable; the message says where and why (shown to the caller as a 422)."""


def bad_text(text: str) -> bool:
    """True when `text` holds a lone surrogate (it cannot be encoded as UTF-8)."""
    return _SURROGATE.search(text) is not None


def clean_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if bad_text(text) else text


def problem(value: Any, max_depth: int = MAX_DEPTH, path: str = "") -> str | None:
    """Why `value` may not be stored (None when it may): the first problem found, with its path."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        v, where, depth = stack.pop()
        if isinstance(v, str):
            if bad_text(v):
                return f"{where or 'value'}: text must be valid Unicode (it holds a lone surrogate)"
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int):
            if not -_INT64 <= v < _INT64:
                return f"{where or 'value'}: integers must fit in 64 bits"
        elif isinstance(v, float):
            if not math.isfinite(v):
                return f"{where or 'value'}: numbers must be finite (no NaN or Infinity)"
        elif isinstance(v, dict | list | tuple):
            if depth >= max_depth:
                return f"{where or 'value'}: nested deeper than {max_depth} levels"
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, item in items:
                key = str(k)
                if isinstance(k, str) and bad_text(k):
                    return f"{where or 'value'}: keys must be valid Unicode (one holds a lone surrogate)"
                stack.append((item, f"{where}.{key}" if where else key, depth + 1))
    return None


def check(value: Any, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """`value` unchanged when it may be stored; else `PayloadError` saying why."""
    found = problem(value, max_depth)
    if found is not None:
        raise PayloadError(found)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > max_bytes:
        raise PayloadError(f"at most {max_bytes} bytes of JSON ({size} given)")
    return value


def free_json(max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Callable[[Any], Any]:
    """A pydantic after-validator applying `check` with these bounds."""

    def validate(value: Any) -> Any:
        return check(value, max_depth, max_bytes)

    return validate


FreeJSON = Annotated[dict[str, Any], AfterValidator(free_json())]
"""A free-form JSON object field, bounded (`MAX_DEPTH`, `MAX_BYTES`) and valid Unicode."""


def scrub(value: Any, max_depth: int = READ_DEPTH) -> Any:
    """`value` made serialisable whatever it holds (see the module docstring); never raises."""
    return _scrub(value, max_depth, 0)


def _scrub(v: Any, max_depth: int, depth: int) -> Any:
    if isinstance(v, str):
        return clean_text(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict | list | tuple):
        if depth >= max_depth:
            return TOO_DEEP
        if isinstance(v, dict):
            return {clean_text(str(k)): _scrub(x, max_depth, depth + 1) for k, x in v.items()}
        return [_scrub(x, max_depth, depth + 1) for x in v]
    return v


def dumps(value: Any, **kwargs: Any) -> str:
    """`json.dumps` that cannot fail on stored data (`scrub` first; anything else unknown as `str`)."""
    kwargs.setdefault("default", str)
    return json.dumps(scrub(value), allow_nan=False, **kwargs)
