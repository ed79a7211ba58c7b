"""The help center as the API uses it: put a document (replacing one with the same `source_id`) and search."""

from __future__ import annotations

from collections.abc import Callable

from knowledge.index import KnowledgeIndex
from knowledge.retriever import Retriever
from knowledge.types import Chunk, Document, SearchHit


class KnowledgeBase:
    """`on_put(chunks)`: told the chunks of each document put (added or changed), after they are searchable (the
    server warms their sentence vectors in the background)."""

    def __init__(
        self, index: KnowledgeIndex, retriever: Retriever, on_put: Callable[[list[Chunk]], None] | None = None
    ) -> None:
        self.index = index
        self.retriever = retriever
        self.on_put = on_put

    def put(self, doc: Document, origin: str = "api") -> tuple[str, int]:
        """Index `doc` (only what changed is embedded again); returns (status, number of chunks). The keyword
        index of this process sees the change at once."""
        status = self.index.upsert_document(doc, origin=origin)
        self.retriever.invalidate()
        chunks = self.index.get_document_chunks(doc.source_id)
        if self.on_put is not None and status != "unchanged":
            self.on_put(chunks)
        return status, len(chunks)

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        return self.retriever.search(query, k)
