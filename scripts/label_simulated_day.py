"""How evals/labels/simulated_day.jsonl was labelled (see evals/labels/RULES.md).

Answer-level judgements (relevance, groundedness, policy) were written by hand, per distinct answer text,
from reading it against its question and cited source; conversation-level judgements follow the rules
from the transcript's shape (what the customer did next, whether a person came). Kept as the record of
the labels; usage: python scripts/label_simulated_day.py DATA_DIR GROUPS.json
"""

import json
import sys

from assistant.models import Review, utcnow
from assistant.settings import Settings
from assistant.store.repo import Store

# distinct answers I read: (relevance, groundedness, policy, note)
ANSWERS = {
    "If you pay for Larkspur Plus monthly, you can pause": (1.0, 1.0, 1.0, None),
    "If you love the item but need it in a different size": (1.0, 1.0, 1.0, None),
    "Apple Pay and Google Pay: time after we issue the refund": (0.75, 1.0, 1.0, None),
    "At checkout, choose **Gift card** under payment.": (0.75, 1.0, 1.0, None),
    "Two-factor authentication (2FA) adds a second step": (
        0.25,
        1.0,
        1.0,
        "explains what 2FA is, not how to turn it on",
    ),
    "Start the return from your order page in the same way.": (0.5, 1.0, 1.0, "vague: 'in the same way' as what?"),
    "You can change your email address, mobile number": (0.75, 1.0, 1.0, None),
    "If you've opened your delivery and something isn't there": (
        0.0,
        1.0,
        1.0,
        "about missing items, not a missed delivery",
    ),
    "You can cancel your Larkspur Plus membership at any time online": (0.75, 1.0, 1.0, "says it can be done, not how"),
    "Standard (UPS): delivery time 7-12": (0.5, 1.0, 1.0, "US prices only; the customer's country is unknown"),
    "- Standard (UPS): delivery time 7-12": (0.5, 1.0, 1.0, "US prices only; the customer's country is unknown"),
    "You can change the Collect Point while": (0.25, 1.0, 1.0, "does not say whether or how to collect"),
    "We **authorise** your payment": (0.0, 1.0, 1.0, "when payment is taken, not which methods"),
    "We offer several ways to get your order delivered": (0.0, 1.0, 1.0, "delivery options for a torn cushion"),
    "Open the email from no-reply@larkspurhome.example": (0.75, 1.0, 1.0, "skips 'Forgot password?' step"),
    "Select **Two-factor authentication** and choose a method": (0.75, 1.0, 1.0, None),
    "To turn on two-factor authentication, you can use the method mentioned in": (
        0.5,
        0.5,
        1.0,
        "garbled ('mentioned in .'), QR code is not 'a code from your phone'",
    ),
    "(Payment methods we accept > When you're charged)": (
        0.0,
        1.0,
        1.0,
        "repeats when payment is taken; no methods listed",
    ),
    "(Payment methods we accept > Accepted payment methods by country)": (
        0.25,
        1.0,
        1.0,
        "heading promises methods, text is about charging",
    ),
    "Click & Collect lets you pick up your order": (1.0, 1.0, 1.0, None),
    "This guide explains how missed deliveries work": (0.25, 1.0, 1.0, "an article intro, no answer"),
    "A refund takes 5 business days to reach your card.": (
        0.75,
        0.25,
        0.25,
        "source says 5-10 business days after the refund is issued: a shorter promise",
    ),
    "Go to **Account > Settings > Personal details**": (1.0, 1.0, 1.0, None),
    "(Larkspur gift cards > Using a gift card) - Choose any whole-pound value": (
        0.25,
        1.0,
        1.0,
        "about buying a gift card, not using one",
    ),
    "Upholstered sofas, armchairs and headboards": (
        0.0,
        1.0,
        1.0,
        "cancellation of made-to-order sofas for a torn cushion",
    ),
    "At checkout, choose **Gift card** under payment. Enter the **16-digit": (1.0, 1.0, 1.0, None),
    "Click & Collect is a service that allows you": (
        1.0,
        0.75,
        1.0,
        "'collect at any time' overstates 'a time that suits you'",
    ),
}
HANDOFF = "I'm passing this conversation"


def answer_of(text):
    best = None
    for k, v in ANSWERS.items():
        if text.startswith(k) and (best is None or len(k) > len(best[0])):
            best = (k, v)
    if best is None:
        raise SystemExit(f"unread answer: {text[:80]}")
    return best[1]


def label(t):
    turns, o = t.turns, t.observed
    customer = [x.text for x in turns if x.role == "customer"]
    answers = [x for x in turns if x.role == "assistant" and x.mode in ("generated", "extractive")]
    agent = [x.text for x in turns if x.role == "agent"]
    handed = any(x.mode == "handoff" for x in turns)
    asked = any(w in customer[0].lower() for w in ("person", "agent", "human"))
    s = {
        k: None for k in ("groundedness", "relevance", "resolution", "effort", "tone", "policy", "handoff_appropriate")
    }
    tags, notes = [], []
    if answers:
        judged = [answer_of(a.text) for a in answers]
        s["relevance"] = min(j[0] for j in judged)
        s["groundedness"] = min(j[1] for j in judged)
        s["policy"] = min(j[2] for j in judged)
        notes += [j[3] for j in judged if j[3]]
        if s["relevance"] < 0.5:
            tags.append("irrelevant_answer")
        if s["groundedness"] < 0.5:
            tags.append("ungrounded")
        if s["policy"] < 0.5:
            tags.append("policy_violation")
    else:
        s["policy"] = 1.0
    contradicted = any("didn't work" in c for c in customer)
    repeated = len(customer) >= 3 and customer[0] == customer[1]
    thanked = any(w in c.lower() for c in customer for w in ("thank", "great", "perfect"))
    # tone: closings are warm; the handoff line is reassuring; the agent's bare refusal is curt
    s["tone"] = 1.0 if thanked else 0.75
    if any(a.startswith("Sorry, I can't change that") for a in agent):
        s["tone"] = 0.25
        tags.append("agent_unhelpful")
        notes.append("agent refuses in five words, no reason or alternative")
    if repeated:
        s["tone"] = 0.5
        notes.append("nobody acknowledged 'I already told you'")
    # handoff
    if asked or handed and contradicted:
        s["handoff_appropriate"] = 1.0
    elif handed and repeated:
        s["handoff_appropriate"] = 0.75
        notes.append("handed off at once, but after showing an irrelevant answer")
    elif handed:
        # the only other case: a good answer, then a low-confidence handoff
        s["handoff_appropriate"] = 0.0 if s["relevance"] >= 0.75 else 1.0
        if s["handoff_appropriate"] == 0.0:
            tags.append("unnecessary_handoff")
            notes.append("the answer was right; the handoff was not needed")
    # resolution (what the customer experienced) and effort (what they had to do)
    if o.outcome == "abandoned":
        s["resolution"] = 0.0
        s["effort"] = 0.25
        if handed:
            tags.append("no_agent")
        else:
            tags.append("unresolved")
    elif o.outcome == "unresolved":
        s["resolution"] = 0.0
        s["effort"] = 0.25
        tags.append("unresolved")
    elif o.outcome == "resolved_by_agent":
        s["resolution"] = 1.0
        s["effort"] = 0.25 if repeated else 0.75
    elif o.outcome == "resolved_by_bot_confirmed":
        s["resolution"] = 1.0 if o.durable is not False else 0.5
        s["effort"] = 0.75 if o.signals.get("recontact") else 1.0
    elif o.outcome == "resolved_by_bot_assumed":
        s["resolution"] = 0.75 if s["relevance"] >= 0.5 else 0.25
        s["effort"] = 1.0
        if s["resolution"] < 0.5:
            tags.append("unresolved")
    bad = any(v is not None and v < 0.5 for v in s.values())
    return ("bad" if bad else "good"), sorted(set(tags)), s, "; ".join(dict.fromkeys(notes)) or None


if __name__ == "__main__":
    from assistant.services import build_index
    from evals.cases import transcript_from_store

    d = sys.argv[1]
    with open(sys.argv[2]) as fh:
        groups = json.load(fh)
    st = Settings(data_dir=d)
    store = Store(st.sqlalchemy_url)
    index = build_index(st)
    n = 0
    for ids in groups.values():
        cid = ids[0]  # one case per distinct transcript
        t = transcript_from_store(store, cid, index)
        lab, tags, scores, note = label(t)
        store.add_review(
            Review(
                conversation_id=cid,
                label=lab,
                tags=tags,
                note=note,
                reviewer="labeller:quality-branch",
                scores=scores,
                created_at=utcnow(),
            )
        )
        n += 1
        print(lab, cid[-6:], tags, scores, note)  # noqa: T201 - a script's report
    print(n, "reviews")  # noqa: T201
