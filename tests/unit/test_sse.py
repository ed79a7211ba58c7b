"""The one server-sent-event reader (`evals.sse`) the evals and tests use on the turn stream and `/events`."""

from __future__ import annotations

from evals.sse import Event, iter_sse, parse_sse


def test_events_come_as_each_ends_and_one_the_stream_cuts_does_not() -> None:
    lines = ["retry: 2000", ": connected", "", "event: token", "id: 3", 'data: {"text":', 'data: "hi"}', ""]
    lines += ["data: 1", "", "event: done", 'data: {"turn_id": "t"}']  # cut before its blank line
    assert list(iter_sse(lines)) == [Event("token", {"text": "hi"}, "3"), Event("message", 1)]


def test_a_whole_body_keeps_its_last_event() -> None:
    body = 'event: token\r\ndata: {"text": "a"}\r\n\r\n: ping\n\n\nevent: done\ndata: {}'
    assert parse_sse(body) == [("token", {"text": "a"}), ("done", {})]
