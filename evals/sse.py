"""Reading server-sent events (the turn stream, `/events`) in evals and tests: the one parser of the format.

`iter_sse` reads lines as they arrive (an open `httpx` stream's `iter_lines()`) and yields each event when the blank
line that ends it comes, as a browser's `EventSource` does; `parse_sse` reads a whole body. Data is parsed as JSON
(every event we send carries JSON); comments are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple


class Event(NamedTuple):
    name: str  # the `event:` field; "message" when there is none
    data: Any  # the `data:` lines joined with newlines, parsed as JSON
    id: str | None = None  # the `id:` field, if any


def iter_sse(lines: Iterable[str]) -> Iterator[Event]:
    """The events of a stream, each as soon as it is complete. An event the stream ends inside is not yielded (the
    format's rule: it was never finished), nor is one without data."""
    name, data, id_ = "message", [], None  # the event being read
    for line in lines:
        if line == "":
            if data:
                yield Event(name, json.loads("\n".join(data)), id_)
            name, data, id_ = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            id_ = value


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of a whole server-sent-event body; its last event counts even without the final blank
    line (the body is all there is)."""
    lines = text.replace("\r\n", "\n").split("\n")
    return [(e.name, e.data) for e in iter_sse([*lines, ""])]
