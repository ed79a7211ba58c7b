"""Intent signals of a customer message, independent of the knowledge: asking for a person, frustration,
and policy topics that always go to a person (legal threats, account security, ...).

These are rules, on purpose: they must work with no model at all, be explainable to a CX team ("why
was this handed off?") and be configurable. Patterns cover the common forms in English, French,
German, Spanish, Italian, Portuguese and Dutch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from assistant.models import FrustrationSignals

_FLAGS = re.I | re.U

# "talk to a person" in its common forms, several languages. Each alternative needs a verb of contact or an
# explicit request noun, so that "a person can return items" does not count.
_HUMAN = re.compile(
    r"(\b(talk|speak|chat|connect|transfer|put|contact|reach|call|get hold of|get through to)\w*\b.{0,25}"
    r"\b(human|person|people|someone|somebody|agent|representative|rep|operator|advisor|adviser|assistant|staff|"
    r"team member|real one|manager|supervisor)\b"
    r"|\b(real|live|actual|human)\s+(person|human|agent|being|support|representative)\b"
    r"|\b(human|agent|representative|operator|person)\s*(please|pls|now|asap)\b"
    r"|^\s*(agent|human|representative|operator)[\s!.?]*$"
    r"|\bcan i (get|have) (a|an) (human|person|agent)\b"
    r"|\bparler (à|a|avec) (un|une|quelqu'un|quelqu un)\s*(conseill\w*|humain\w*|agent|personne|opérat\w*)?"
    r"|\b(un|une) (humain|conseill\w+ humain)\b"
    r"|\b(mit )?(einem|einer) (menschen|mitarbeiter\w*|berater\w*|agenten|person)\b.{0,20}\b(sprechen|reden|verbinden)"
    r"|\b(echte[nr]?|richtige[nr]?) (mensch\w*|person)\b"
    r"|\bhablar con (un|una|alguien|el|la)\b\s*(persona|agente|humano|asesor\w*|operador\w*)?"
    r"|\b(agente|persona|asesor) (humano|real)\b"
    r"|\bparlare con (un|una|qualcuno)\b\s*(operatore|persona|umano|consulente)?"
    r"|\bfalar com (um|uma|algu[eé]m)\b\s*(atendente|pessoa|humano|agente)?"
    r"|\b(met|naar) een (medewerker|mens|persoon)\b)",
    _FLAGS,
)

_ALREADY_TOLD = re.compile(
    r"(\b(i|i've|i have|i already|as i)\b.{0,15}\b(already )?(told|said|explained|mentioned|asked|wrote|gave)\b.{0,15}"
    r"\b(you|this|that|it|before|already)\b"
    r"|\bi just (told|said|explained)\b|\bread (my|the) (message|question)\b|\bas i said\b"
    r"|\bje (vous |l')?(ai|l'ai) déjà (dit|expliqué)\b|\bhabe (ich )?(ihnen |es )?(schon|bereits) (gesagt|erklärt)\b"
    r"|\bya (te|le|se) (lo )?(dije|he dicho|expliqué)\b|\bgià (detto|spiegato)\b|\bjá (disse|expliquei)\b)",
    _FLAGS,
)

_NEGATIVE = re.compile(
    r"\b(angry|annoy\w*|frustrat\w*|furious|ridiculous|terrible|awful|useless|unacceptable|worst|disappoint\w*|"
    r"disgust\w*|pathetic|rubbish|horrible|hate|fed up|sick of|waste of time|joke|scam|incompetent|"
    r"still (not|no|nothing|hasn't|haven't|isn't|doesn't|waiting)|not (working|helpful|good enough)|doesn't help|"
    r"no help|never (arrived|came|got)|wtf|ffs|"
    r"inacceptable|nul|énervé|wütend|unverschämt|inaceptable|vergonzoso|pésimo|inaccettabile|péssimo)\b"
    r"|!!+|\?\?+",
    _FLAGS,
)

DEFAULT_POLICY_RULES: dict[str, list[str]] = {
    "legal": [
        r"\b(lawyer|solicitor|attorney|legal action|sue|suing|lawsuit|court|small claims|trading standards|"
        r"ombudsman|chargeback|avocat|anwalt|abogado|avvocato|advogado)\b",
    ],
    "account_security": [
        r"\b(hack(ed|er)?|compromised|someone (else )?(logged|got|broke) in\w*|unauthori[sz]ed|"
        r"didn'?t (make|authori[sz]e) (this|that|these)|fraud\w*|stolen (card|identity|account)|identity theft|"
        r"phishing|scam email)\b",
        # someone else paying with the customer's card: "someone's been using my card", "charges I never made"
        r"\b(someone|somebody)('s| is| has|'s been| has been)? ?(been )?us(e|es|ed|ing) my (card|account|details)\b",
        r"\b(charges?|payments?|transactions?) (that |which )?i (never|didn'?t|did not) (made|make|authori[sz]\w*)\b",
        r"\b(but|and) i (never|didn'?t|did not) (buy|bought|order|ordered|purchase\w*)\b",
    ],
    "safety": [
        r"\b(injur\w*|hurt (myself|me|my)|caught fire|on fire|burn(ed|t)|electric(al)? shock|sparking|smok(ing|ed)|"
        r"smoke(?! (grey|gray|glass|blue|white)))\b",  # "smoke grey" is a colour
        # an electrical product that sparks, overheats or smells of burning; a burn; furniture that collapsed
        r"\b(sparks?|sparked|overheat\w*|melt(ed|ing)|collapsed)\b",
        r"\bsmell\w* (of )?(fire|burning|smoke)\b",
        r"\bburn(s|ing)? (my|his|her|their|our) (own )?(hand|finger|arm|leg|skin|face)s?\b",
    ],
    "formal_complaint": [
        r"\b(formal complaint|make a complaint|file a complaint|escalat\w*)\b",
        r"\b(speak|talk|get|want|need)\b.{0,20}\b(your |a |the )?(manager|supervisor)\b",
    ],
}


def negative_count(text: str) -> int:
    """Negative expressions (anger, "still not working", "!!") in a message."""
    return len(_NEGATIVE.findall(text))


# Contact in the past ("I was chatting to someone on Saturday", "I spoke to an agent yesterday") is history, not a
# request for a person now.
_PAST_CONTACT = re.compile(
    r"\b(was|were|had|have been|'ve been|i've|did (i|you|we))\s+(\w+\s+)?(talk|speak|chat|call|contact)\w*"
    r"|\b(talked|spoke|spoken|chatted|called|contacted)\b",
    _FLAGS,
)


def wants_human(text: str) -> bool:
    """The customer explicitly asks for a person (now: not "I spoke to someone yesterday")."""
    return bool(_HUMAN.search(text)) and not _PAST_CONTACT.search(text)


def frustration(
    text: str,
    earlier: Sequence[str],
    vector: np.ndarray | None = None,
    earlier_vectors: np.ndarray | None = None,
    repeat_threshold: float = 0.85,
    rephrase_threshold: float = 0.7,
) -> FrustrationSignals:
    """Signals from this message and the customer's earlier ones (vectors: unit-length embeddings)."""
    repeat = 0.0
    if vector is not None and earlier_vectors is not None and len(earlier_vectors):
        repeat = float(np.max(earlier_vectors @ vector))
    negative = len(_NEGATIVE.findall(text))
    trend = negative + sum(len(_NEGATIVE.findall(t)) for t in list(earlier)[-2:])
    return FrustrationSignals(
        repeat_of=round(max(0.0, repeat), 3),
        repeated=repeat >= repeat_threshold,
        rephrased=rephrase_threshold <= repeat < repeat_threshold,
        already_told=bool(_ALREADY_TOLD.search(text)),
        negative=negative,
        negative_trend=trend,
    )


class PolicyRules:
    """Topics configured as rules: any match sends the conversation to a person with reason `policy:<topic>`."""

    def __init__(self, rules: Mapping[str, Sequence[str]] | None = None) -> None:
        source = DEFAULT_POLICY_RULES if rules is None else rules
        self.rules = {topic: [re.compile(p, _FLAGS) for p in patterns] for topic, patterns in source.items()}

    def topics(self, text: str) -> list[str]:
        return [topic for topic, patterns in self.rules.items() if any(p.search(text) for p in patterns)]
