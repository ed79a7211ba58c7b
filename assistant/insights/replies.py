"""What an agent's reply says, without its pleasantries ("Thanks for waiting", "Is there anything else?"): the part
that answers, used to group knowledge gaps and to draft from them."""

from __future__ import annotations

import re

from knowledge.chunking import split_sentences

_PLEASANTRY = re.compile(
    r"^(?:hi|hello|hey|dear|thanks|thank you|many thanks|sorry|apologies|no problem|you're welcome|happy to help|"
    r"glad to help|let me|one moment|bear with|please hold|i'm (?:sorting|looking|checking|on it)|"
    r"i(?:'ve| have) (?:sorted|checked)|is there anything else|anything else|have a (?:great|nice|good)|"
    r"kind regards|best regards|cheers)\b",
    re.I,
)


def content(reply: str) -> str:
    """An agent's reply without its pleasantries: the sentences that say something."""
    kept = [s for s in split_sentences(reply) if len(s.split()) >= 3 and not _PLEASANTRY.match(s.strip())]
    return " ".join(kept)
