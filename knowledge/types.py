"""Typed values of the knowledge layer: documents in, chunks stored, hits out.

`knowledge` imports nothing of ours, so these live here; `assistant.models` re-exports them and
they cross every boundary above. Chroma result dicts never leave `knowledge.index`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

DocFormat = Literal["markdown", "html", "text"]


class Document(BaseModel):
    """One help article, as loaded: `text` is normalised to Markdown-style headings (`#`, `##`)."""

    source_id: str = Field(min_length=1, max_length=300, description="stable id; re-ingesting it replaces it")
    title: str = Field(min_length=1, max_length=500)
    url: str | None = None
    text: str = Field(min_length=1)
    format: DocFormat = "markdown"
    metadata: dict[str, str] = Field(default_factory=dict, description="e.g. category, domain")


class Chunk(BaseModel):
    """A retrievable piece of a document. `start`/`end` are character offsets into `Document.text`."""

    chunk_id: str
    source_id: str
    title: str
    url: str | None = None
    headings: list[str] = Field(default_factory=list, description="section headings above this chunk")
    text: str
    start: int
    end: int
    position: int = Field(description="index of the chunk within its document")

    @property
    def context_text(self) -> str:
        """What gets embedded: the title and heading path keep a chunk findable out of context."""
        path = " > ".join([self.title, *self.headings])
        return f"{path}\n{self.text}"


class SearchContext(BaseModel):
    """What the conversation so far adds to a search for its latest message (see `knowledge.retriever`)."""

    text: str = Field("", description="the conversation the message follows (last customer message, last reply)")
    weight: float = Field(
        0.5, ge=0, le=1, description="share of the message-with-context vector in the dense query (0 = message alone)"
    )
    sources: list[str] = Field(
        default_factory=list, description="documents cited by the conversation's latest replies, newest last"
    )
    may_switch: bool = Field(
        True, description="the message reads as self-contained, so it may change the topic (a follow-up may not)"
    )


class SearchHit(BaseModel):
    """A chunk found for a query; `score` is cosine similarity in 0..1 (higher is better)."""

    chunk: Chunk
    score: float
    vector_score: float | None = None
    lexical_score: float | None = None


class IngestReport(BaseModel):
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="files that could not be read, with the reason")
    chunks_embedded: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = Field(
        default_factory=dict,
        description="where the time went: loading (the documents iterable), reading (the index's manifest and "
        "chunk ids), hashing, chunking, embedding, writing (Chroma upserts, deletes, revision)",
    )

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_embedded / self.seconds if self.seconds > 0 else 0.0
