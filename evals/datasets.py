"""Readers for the public dev datasets under `Settings.shared_data_dir` (see ../shared/data/README.md).

Rows are turned into typed records here and nowhere else; benchmarks never hard-code rows.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from knowledge.loaders import load_doc2dial


class DatasetMissingError(FileNotFoundError):
    """A benchmark's dataset file is not where the settings say (shown with the path to fix)."""


class Doc2DialSpan(BaseModel):
    start: int
    end: int


class Doc2DialTurn(BaseModel):
    id: str
    dial_id: str
    doc_id: str
    domain: str
    history: list[tuple[str, str]]  # (role, utterance), role in {"user", "agent"}
    utterance: str
    gold_spans: list[Doc2DialSpan]
    gold_answer: str


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DatasetMissingError(f"dataset file not found: {path} (set CXA_SHARED_DATA_DIR or --data)")
    return path


def doc2dial_documents_path(data_dir: Path) -> Path:
    return _require(data_dir / "doc2dial" / "documents.jsonl")


def doc2dial_turns(data_dir: Path, limit: int | None = None) -> list[Doc2DialTurn]:
    """Dev turns with their gold spans resolved to character offsets in the document text."""
    spans: dict[str, dict[str, Doc2DialSpan]] = {}
    with doc2dial_documents_path(data_dir).open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            spans[row["doc_id"]] = {s["id_sp"]: Doc2DialSpan(start=s["start"], end=s["end"]) for s in row["spans"]}
    turns: list[Doc2DialTurn] = []
    with _require(data_dir / "doc2dial" / "turns_dev.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            doc_spans = spans.get(row["doc_id"], {})
            turns.append(
                Doc2DialTurn(
                    id=row["id"],
                    dial_id=row["dial_id"],
                    doc_id=row["doc_id"],
                    domain=row["domain"],
                    history=[(h["role"], h["utterance"]) for h in row["history"]],
                    utterance=row["user_utterance"],
                    gold_spans=[doc_spans[s] for s in row["gold_span_ids"] if s in doc_spans],
                    gold_answer=row["gold_answer_text"],
                )
            )
            if limit is not None and len(turns) >= limit:
                break
    return turns


def doc2dial_documents(data_dir: Path) -> Iterator:
    return load_doc2dial(doc2dial_documents_path(data_dir))


class TweetSummDialogue(BaseModel):
    id: str
    turns: list[tuple[str, str]]  # (speaker, text), speaker in {"customer", "agent"}
    summaries: list[str]  # the human abstractive summaries


_MENTION = re.compile(r"(?:^|\s)@\w+")
_URL = re.compile(r"https?://\S+")
_SIGNATURE = re.compile(r"(?:\s[-^*]\s?[A-Z]{1,3}\b|\s\^\w+)\s*$")


def clean_tweet(text: str) -> str:
    """A tweet as a chat message: @mentions, links and the agent's initials signature (^MG) removed."""
    text = _URL.sub("", _MENTION.sub(" ", text))
    text = _SIGNATURE.sub("", text.strip())
    return " ".join(text.split())


def tweetsumm_dialogues(data_dir: Path, limit: int | None = None) -> list[TweetSummDialogue]:
    """TweetSumm dev dialogues (customer <-> agent on Twitter) with their human abstractive summaries."""
    out: list[TweetSummDialogue] = []
    with _require(data_dir / "tweetsumm" / "dialogues_dev.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            turns = [(t["speaker"], clean_tweet(t["text"])) for t in row["turns"]]
            summaries = [s for s in row.get("abstractive_summaries", []) if s.strip()]
            if not summaries:
                continue
            out.append(
                TweetSummDialogue(id=row["conversation_id"], turns=[t for t in turns if t[1]], summaries=summaries)
            )
            if limit is not None and len(out) >= limit:
                break
    return out


def banking77_rows(data_dir: Path) -> list[tuple[str, str]]:
    """BANKING77 train as (text, intent) rows: 10,003 online-banking queries over 77 intents."""
    rows: list[tuple[str, str]] = []
    with _require(data_dir / "banking77" / "train.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
            raise ValueError(f"{fh.name}: expected the columns text,category (got {reader.fieldnames})")
        for row in reader:
            text, label = (row["text"] or "").strip(), (row["category"] or "").strip()
            if text and label:
                rows.append((text, label))
    return rows


def clinc150_queries(data_dir: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """CLINC150 dev: the in-scope (train + val) queries as (text, intent) rows over 150 intents, and the
    out-of-scope queries (oos_train + oos_val)."""
    with _require(data_dir / "clinc150" / "dev.json").open(encoding="utf-8") as fh:
        d = json.load(fh)
    in_scope = [(str(t).strip(), str(label)) for t, label in [*d.get("train", []), *d.get("val", [])] if str(t).strip()]
    oos = [str(t).strip() for t, _ in [*d.get("oos_train", []), *d.get("oos_val", [])] if str(t).strip()]
    return in_scope, oos
