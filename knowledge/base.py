"""The help center as the API uses it: put a document (replacing one with the same `source_id`) and search."""

from __future__ import annotations

from knowledge.index import KnowledgeIndex
from knowledge.retriever import Retriever
from knowledge.types import Document, SearchHit


class KnowledgeBase:
    def __init__(self, index: KnowledgeIndex, retriever: Retriever) -> None:
        self.index = index
        self.retriever = retriever

    def put(self, doc: Document, origin: str = "api") -> tuple[str, int]:
        """Index `doc` (only what changed is embedded again); returns (status, number of chunks). The keyword
        index of this process sees the change at once."""
        status = self.index.upsert_document(doc, origin=origin)
        self.retriever.invalidate()
        return status, len(self.index.get_document_chunks(doc.source_id))

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        return self.retriever.search(query, k)
