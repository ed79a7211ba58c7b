"""The chat model the browser tests serve: the test fake (`tests.fakes.FakeChatModel`) replying as the built-in fake
does, but quoting up to three source sentences (each with its citation), and streaming word by word with a short
pause, so the widget's incremental rendering can be observed the way a customer sees it with a real model."""

from __future__ import annotations

import re

from assistant.llm.fake import _FAKE_STOP, _SOURCE, _WORDS, FakeSupportChatModel
from tests.fakes import Call, FakeChatModel


def slow_quoting_model(sentences: int = 3, delay_s: float = 0.03) -> FakeChatModel:
    return FakeChatModel(reply=lambda call: quoting_reply(call, sentences), token_delay_s=delay_s)


def quoting_reply(call: Call, sentences: int) -> str:
    """The best `sentences` source sentences of four words or more, each with its citation, or "I don't know.";
    a structured call is answered as `FakeSupportChatModel` answers it."""
    schema = call.options.get("json_schema")
    if schema is not None:
        return FakeSupportChatModel().structured(call.messages, schema)
    text = "\n".join(str(m.content) for m in call.messages)
    question = text.rsplit("Question:", 1)[-1].split("\n", 1)[0]
    q = {w for w in _WORDS.findall(question.lower()) if w not in _FAKE_STOP}
    scored: list[tuple[int, int, str]] = []
    for line in text.splitlines():
        m = _SOURCE.match(line.strip())
        if not m:
            continue
        body = re.sub(r"^\([^)]*\)\s*", "", m.group(2))
        for sentence in re.split(r"(?<=[.!?])\s+", body):
            overlap = len(q & set(_WORDS.findall(sentence.lower())))
            if overlap and len(sentence.split()) >= 4:
                scored.append((overlap, int(m.group(1)), sentence.strip()))
    if not scored:
        return "I don't know."
    best = sorted(scored, key=lambda s: -s[0])[:sentences]
    return " ".join(f"{s} [{n}]" if s.endswith((".", "!", "?")) else f"{s}. [{n}]" for _, n, s in best)
