"""`cxa bench retrieval --dialogues` on a tiny synthetic doc2dial: dialogues regrouped from dev rows, replayed
through the real engine (extractive answers, fake model), figures in range."""

from __future__ import annotations

import json
from pathlib import Path

from evals.bench.dialogues import Step, dialogues, position, run_dialogues
from evals.datasets import doc2dial_turns
from tests.conftest import make_settings

PAGES = {
    "Returning a sofa#1_0": "You can return a sofa within 30 days of delivery. We collect it for a fee of 49 euros.",
    "Mattress trial#1_0": "Mattresses come with a 100-night trial. We collect a returned mattress for free.",
    "Delivery times#1_0": "Most orders arrive within 5 working days. Furniture is delivered on a booked day.",
}
# dialogue id -> page, customer turns (the second of dialogue d1 has no gold: it is replayed, not scored)
DIALOGUES = {
    "d1": ("Returning a sofa#1_0", ["Can I return a sofa?", "ok", "and is there a fee?"]),
    "d2": ("Mattress trial#1_0", ["How long is the mattress trial?", "who collects it?"]),
    "d3": ("Delivery times#1_0", ["When will my order arrive?", "and furniture?"]),
}


def write_doc2dial(root: Path) -> Path:
    d = root / "doc2dial"
    d.mkdir(parents=True)
    with (d / "documents.jsonl").open("w") as fh:
        for doc_id, text in PAGES.items():
            spans = [{"id_sp": "1", "start": 0, "end": len(text)}]
            fh.write(json.dumps({"doc_id": doc_id, "domain": "shop", "doc_text": text, "spans": spans}) + "\n")
    with (d / "turns_dev.jsonl").open("w") as fh:
        for dial, (doc_id, utterances) in DIALOGUES.items():
            history: list[dict[str, str]] = []
            for i, u in enumerate(utterances):
                if not (dial == "d1" and i == 1):
                    row = {
                        "id": f"{dial}_{i}",
                        "dial_id": dial,
                        "turn_id": 2 * i + 1,
                        "domain": "shop",
                        "doc_id": doc_id,
                        "history": list(history),
                        "user_utterance": u,
                        "gold_span_ids": ["1"],
                        "gold_answer_text": PAGES[doc_id],
                    }
                    fh.write(json.dumps(row) + "\n")
                history += [{"role": "user", "utterance": u}, {"role": "agent", "utterance": "(the agent's reply)"}]
    return root


def test_dev_rows_are_regrouped_into_whole_dialogues(tmp_path: Path) -> None:
    shared = write_doc2dial(tmp_path / "shared")
    dials = dialogues(doc2dial_turns(shared))
    assert len(dials) == 3
    assert dials[0] == [
        Step("Can I return a sofa?", "Returning a sofa#1_0"),
        Step("ok", None),  # no dev row: replayed, not scored
        Step("and is there a fee?", "Returning a sofa#1_0"),
    ]
    assert [position(i) for i in range(4)] == ["1st", "2nd", "3rd+", "3rd+"]


def test_the_dialogue_benchmark_replays_through_the_engine(tmp_path: Path) -> None:
    shared = write_doc2dial(tmp_path / "shared")
    settings = make_settings(tmp_path / "data", shared_data_dir=shared)
    result = run_dialogues(settings, shared, switches=6)
    assert result.dialogues == 3 and result.turns == 6
    assert sum(result.turns_by_position.values()) == 6
    assert result.turns_by_position == {"1st": 3, "2nd": 2, "3rd+": 1}
    for rate in (result.citation_rate, *result.by_position.values(), result.cut_short, result.lost_to_handoff):
        assert 0.0 <= rate <= 1.0
    assert result.switch_dialogues > 0 and result.switch_turn_rate is not None
    assert sum(result.handoff_reasons.values()) <= result.dialogues + result.switch_dialogues
    assert dict(result.summary_rows())["dialogues / scored turns"] == "3 / 6"
