"""Prompt-injection defences: what untrusted text may put in a prompt, and what a reply may say.

Untrusted text is everything a model reads that we did not write: retrieved help-center passages,
the customer's profile, events and earlier conversations, and the customer's messages. A model
follows instructions wherever it reads them, so the defence does not rely on the model:

- `strip_invisible` removes characters a person cannot see but a model reads (zero-width, bidi
  controls, Unicode "tag" characters used for ASCII smuggling).
- `neutralize` replaces sentences of untrusted text that address a model ("ignore previous
  instructions", "print your system prompt", role markers, our own prompt delimiters, also when
  hidden in base64, leetspeak or tag characters) by a marker before the text enters a prompt.
  Detection is a filter, not a proof: an unseen phrasing gets through, hence the output check.
- `OutputGuard.check` judges each sentence before it is shown, streamed or stored: it refuses
  secrets and token-like strings, echoes of our own instructions, markdown images, links and email
  addresses that are not in the sources the turn was given, claims of actions the assistant cannot
  take ("I have refunded your order"), and injection or persona text. Sentences are checked one by
  one as they stream (the answerer already buffers a sentence before showing it), so nothing
  refused ever reaches the customer, the transcript or the handoff summary.

Secrets never enter a prompt in the first place: `assistant.llm.ChatGateway` redacts any configured
credential from a rendered prompt (and logs that it had to).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from assistant.safety.redact import Secrets

REMOVED = "[removed: instructions found in the data]"

_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]")
_TAGS = re.compile("[\U000e0020-\U000e007e]")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
# Our own prompt delimiters and chat-template role markers: data must not be able to close or open them.
_DELIMITERS = re.compile(
    r"</?\s*(?:sources|account|conversation|question|data|system|instructions?|user|assistant)\s*>"
    r"|<\|[^|>]{1,20}\|>|\[/?(?:INST|SYS|SYSTEM)\]",
    re.I,
)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")

_INJECTION = re.compile(
    "|".join(
        [
            # "ignore / disregard / forget ... previous instructions"
            r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,50}?"
            r"\b(?:instructions?|prompts?|rules|directions|guidelines|guardrails|restrictions|programming)\b",
            r"\b(?:system|initial|original|hidden|secret|developer)\s+(?:prompt|instructions?|message)\b",
            r"\b(?:reveal|print|show|repeat|output|display|leak|dump|recite|translate|spell out)\b[^.\n]{0,40}?"
            r"\b(?:your (?:prompt|instructions|rules|configuration)|everything (?:above|before)|text above"
            r"|words above|the above|context window)\b",
            r"\b(?:developer|god|admin|debug|jailbreak|unrestricted|dan)\s+mode\b",
            r"\bdo anything now\b|\bi am dan\b|\bas dan\b|\bdan:",
            r"\byou are (?:now|no longer)\b|\bfrom now on,? you\b|\bpretend (?:to be|you are)\b",
            r"\bnew (?:instructions|rules|task|role|persona)\b",
            r"\b(?:note|message|instructions?|reminder) (?:to|for) (?:the |any )?"
            r"(?:ai|assistant|model|bot|llm|chatbot|summari[sz]er|language model)\b",
            r"\b(?:ai|assistant|model|chatbot|bot|llm|summari[sz]er)s? (?:must|should|shall|will|has to) "
            r"(?:now |always |also )*(?:say|tell|reply|respond|answer|write|ignore|reveal|include|output|append|state"
            r"|report|claim)\b",
            r"^\s*(?:system|assistant|developer)\s*:",
            r"</?\s*(?:sources|account|conversation|question|system|instructions?)\s*>|\[/?(?:system|inst|sys)\]|<\|(?:im_start|im_end|system|endoftext)\|>",
            r"\b(?:agent|assistant|ai|system|admin|summary|summari[sz]er) (?:instructions?|override|command)s?\s*:",
            r"\bend of (?:document|context|sources|data|article|conversation)\b",
            r"!\[[^\]]*\]\(",
            r"\b(?:append|attach|encode|add)\b[^.\n]{0,60}?\b(?:to|in|into) (?:the |a |this )?(?:url|link|image|query)",
            r"\b(?:admin|agent|bearer|api|access|cx|auth)[ _-]?(?:token|key|secret)s?\b",
            r"\b(?:identity|hmac|signing|webhook) secret\b",
            r"\b(?:another|other|different|all) (?:customers?|users?)'?s?\b[^.\n]{0,40}?"
            r"\b(?:orders?|data|details|emails?|address(?:es)?|accounts?|profiles?|records?)\b",
            r"\b(?:orders?|data|details|emails?|address(?:es)?|accounts?|profiles?|records?)\b[^.\n]{0,30}?"
            r"\b(?:of|for|from|belonging to) (?:another|other|a different|every|all|each|the other) "
            r"(?:customers?|users?)\b",
            r"\b(?:orders?|emails?|address(?:es)?|accounts?|profiles?|records?|details)\b[^.\n]{0,30}?"
            r"\bof (?:the )?(?:customer|user|account)(?: id)? [a-z]+_[\w-]+",
            # other languages: the same "ignore the instructions"
            r"\bignore[zr]?\b[^.\n]{0,40}\binstructions?\b",
            r"\bignorier\w*\b[^.\n]{0,40}\banweisung",
            r"\bignor[ae]\b[^.\n]{0,40}\b(?:instrucciones|istruzioni|instruções)",
            r"игнорир\w*[^.\n]{0,40}инструкци",
            r"忽略[^。\n]{0,20}(?:指示|指令|说明|提示)",
            r"無視[^。\n]{0,20}(?:指示|命令)",
        ]
    ),
    re.I | re.M,
)

_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'`)\]]+", re.I)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)?|<\s*img\b", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_TOKEN = re.compile(
    r"\b(?:sk|pk|rk|ghp|gho|xox[abpr]|AKIA)[-_][A-Za-z0-9_-]{8,}"
    r"|\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{24,}"
    r"|\bbearer\s+[A-Za-z0-9._~+/-]{8,}",
    re.I,
)
_ACTION_VERBS = (
    r"refunded|cancell?ed|changed|updated|deleted|removed|issued|processed|reset|upgraded|downgraded|credited|"
    r"applied|sent|shipped|reshipped|approved|waived|unlocked|closed|reactivated|transferred|placed|modified|"
    r"booked|escalated|reversed|adjusted|compensated|replaced|paused|resumed|extended|confirmed|initiated|submitted"
)
_ACTION_BASE = (
    r"refund|cancel|change|update|delete|remove|issue|process|reset|upgrade|downgrade|credit|apply|send|ship|"
    r"reship|approve|waive|unlock|close|reactivate|transfer|place|modify|book|reverse|adjust|compensate|replace|"
    r"pause|resume|extend|initiate|submit"
)
_OBJECT = r"(?:\w+\s+){0,2}?(?:your|the|this|that|a|an|it|all|you)\b"
_FALSE_ACTION = re.compile(
    rf"\b(?:i|we)(?:'ve|'ll| have| has| just| already| went ahead and| did| will| am going to| can| shall)*"
    rf"(?: also| now| successfully| fully)? (?:{_ACTION_VERBS})\s+{_OBJECT}"
    rf"|\bi(?:'ll| will| am going to| can| shall)(?: now| also)? (?:{_ACTION_BASE})\s+{_OBJECT}"
    rf"|\b(?:{_ACTION_VERBS})\b[^.\n]{{0,30}}\bfor you\b",
    re.I,
)
_PASSIVE_ACTION = re.compile(
    rf"\byour\s+(?:\w+\s+){{0,5}}?(?:has been|have been|was|were|is now|are now)\s+(?:successfully |now |fully )?"
    rf"(?:{_ACTION_VERBS})\b",
    re.I,
)
_CONDITIONAL = re.compile(r"\b(?:once|when|after|if|until|before|unless|as soon as|whether)\b", re.I)
_WORDS = re.compile(r"[a-z0-9']+")


def strip_invisible(text: str) -> str:
    """Remove characters a reader cannot see (zero-width, bidi controls, Unicode tags)."""
    return _INVISIBLE.sub("", text)


def reveal(text: str) -> str:
    """What a model may read in `text`: tag characters decoded to ASCII, invisible characters dropped,
    compatibility forms folded (NFKC), and the decoded form of any base64 run appended."""
    shown = _TAGS.sub(lambda m: chr(ord(m.group(0)) - 0xE0000), text)
    shown = unicodedata.normalize("NFKC", strip_invisible(shown))
    decoded = []
    for run in _B64.findall(shown):
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=False)
        except (binascii.Error, ValueError):
            continue
        s = raw.decode("utf-8", errors="ignore")
        if s and sum(ch.isprintable() for ch in s) / len(s) > 0.9 and " " in s:
            decoded.append(s)
    return "\n".join([shown, *decoded])


@functools.lru_cache(maxsize=2048)  # whole prompt sections go through here: a few KB each at most
def looks_like_injection(text: str) -> bool:
    """Does `text` address a model (instructions, role markers, exfiltration requests), in plain text or
    hidden in tag characters, base64 or leetspeak? (Memoised: the same help-center passages are checked
    turn after turn.)"""
    shown = reveal(text)
    if _INJECTION.search(shown):
        return True
    leet = shown.translate(_LEET)
    return leet != shown and bool(_INJECTION.search(leet))


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


# The speaker labels our own transcripts write ("Assistant: ..."): a transcript's lines start with them, so
# `neutralize(..., speakers=TRANSCRIPT_SPEAKERS)` keeps them, where in any other data a line opening with a role
# ("Assistant:", "System:") is a forged turn and is removed.
TRANSCRIPT_SPEAKERS: tuple[str, ...] = (
    "Customer",
    "Assistant",
    "Agent",
    "Note",
    "customer",
    "assistant",
    "agent",
)


def neutralize(text: str, speakers: Iterable[str] = ()) -> str:
    """Untrusted text, fit for a prompt: invisible characters and HTML comments removed, our delimiters
    and role markers taken out, and every sentence that addresses a model replaced by `REMOVED`.

    `speakers`: the text is a transcript we wrote, one "Speaker: words" line per message (each message's words on
    one line): the labels are ours and kept, the words after them are neutralised like any other data."""
    labels = tuple(speakers)
    if labels and text:
        label = re.compile("^(?:" + "|".join(re.escape(s) for s in labels) + "): ")
        lines = []
        for line in text.split("\n"):
            m = label.match(line)
            lines.append(m.group(0) + _neutralize(line[m.end() :]) if m else _neutralize(line))
        return "\n".join(lines)
    return _neutralize(text)


def _neutralize(text: str) -> str:
    if not text:
        return text
    text = _DELIMITERS.sub(" ", _HTML_COMMENT.sub(" ", strip_invisible(text)))
    if not looks_like_injection(text):
        return text
    lines = []
    for line in text.split("\n"):
        if not looks_like_injection(line):
            lines.append(line)
            continue
        parts = [REMOVED if looks_like_injection(s) else s for s in _SENTENCE.split(line)]
        kept: list[str] = []
        for p in parts:  # one marker for a run of removed sentences
            if not (p == REMOVED and kept and kept[-1] == REMOVED):
                kept.append(p)
        lines.append(" ".join(kept))
    return "\n".join(lines)


def claims_action(text: str) -> bool:
    """A claim that an action on the customer's account was (or will be) taken by the assistant: it
    cannot take any. Conditional descriptions ("once your refund has been processed") are not claims."""
    if _FALSE_ACTION.search(text):
        return True
    return bool(_PASSIVE_ACTION.search(text)) and not _CONDITIONAL.search(text)


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class OutputGuard:
    """Decides whether one sentence of model output may be shown (see the module docstring).

    `secrets` are credentials that must never be shown (also redacted from prompts by the gateway);
    `instructions` are our own prompt texts, which a reply must not echo (`PROMPT_ECHO_WORDS` words in a
    row shared with them and not with the turn's sources)."""

    PROMPT_ECHO_WORDS = 6

    def __init__(self, secrets: Iterable[str] = (), instructions: Iterable[str] = ()) -> None:
        self.secrets = Secrets(secrets)
        self._last_allowed: tuple[str, set[tuple[str, ...]]] | None = None
        self._instructions: set[tuple[str, ...]] = set()
        for text in instructions:
            self._instructions |= _shingles(text, self.PROMPT_ECHO_WORDS)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        self.secrets.add(secrets)

    def _allowed_shingles(self, allowed: str) -> set[tuple[str, ...]]:
        """The shingles of a turn's `allowed` text, kept for the next call: a turn checks every source
        sentence against the same text."""
        last = self._last_allowed
        if last is not None and last[0] == allowed:
            return last[1]
        shingles = _shingles(allowed, self.PROMPT_ECHO_WORDS)
        self._last_allowed = (allowed, shingles)  # one assignment: safe to read from another thread
        return shingles

    def check(self, text: str, allowed: str = "") -> str | None:
        """None when `text` may be shown; otherwise the reason it may not. `allowed` is the text the turn
        was given (sources, the customer's own records): links, emails and long identifiers in it may be
        repeated, nothing else of the kind."""
        if self.secrets.found_in(text):
            return "secret"
        f = _features(text)
        if any(t not in allowed for t in f.tokens):
            return "token"
        if self._instructions:
            echoed = f.shingles & self._instructions
            if echoed and echoed - self._allowed_shingles(allowed):
                return "prompt_echo"
        if f.image:
            return "image"
        if any(u not in allowed for u in f.links):
            return "link"
        if any(e not in allowed for e in f.emails):
            return "personal_data"
        if f.false_action:
            return "false_action"
        if f.injection:
            return "injection"
        return None


@dataclass(frozen=True)
class _Features:
    """What `OutputGuard.check` looks for in one text, whatever the turn: computed once per text (a turn checks
    every source sentence, and the same help-center sentences come back turn after turn)."""

    tokens: tuple[str, ...]
    shingles: frozenset[tuple[str, ...]]
    image: bool
    links: tuple[str, ...]
    emails: tuple[str, ...]
    false_action: bool
    injection: bool


@functools.lru_cache(maxsize=8192)
def _features(text: str) -> _Features:
    shown = reveal(text)
    return _Features(
        tokens=tuple(t.group(0) for t in _TOKEN.finditer(shown)),
        shingles=frozenset(_shingles(shown, OutputGuard.PROMPT_ECHO_WORDS)),
        image=bool(_IMAGE.search(shown)),
        links=tuple(u.group(0).rstrip(".,;:!?") for u in _URL.finditer(shown)),
        emails=tuple(e.group(0) for e in _EMAIL.finditer(shown)),
        false_action=claims_action(shown),
        injection=looks_like_injection(text),
    )
