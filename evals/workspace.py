"""Scratch workspaces for the model-bound benchmarks: a fresh SQLite database in a temporary folder, and a
knowledge index kept in its own collection of the configured Chroma (so the product's `helpcenter`
collection is never touched, and a second run embeds nothing that has not changed), its sentence vectors in the
configured sentence store.

Whatever the settings say, a workspace never writes to the configured database (`database_url` is
dropped) and never posts handoffs to the configured webhook: evaluation conversations are not real ones.
"""

from __future__ import annotations

from pathlib import Path

from assistant.samples import SAMPLE_CUSTOMERS, load_customers
from assistant.services import build_index, warm_sentences
from assistant.settings import Settings
from assistant.store.repo import Store
from knowledge.loaders import SAMPLE_HELPCENTER, iter_folder

HELPCENTER_COLLECTION = "bench_helpcenter"
SAMPLE_COMPANY = "Larkspur Home"


def scratch_settings(settings: Settings, work_dir: Path, collection: str, **overrides: object) -> Settings:
    """`settings` pointed at `work_dir` for state, at the configured Chroma for `collection`."""
    work_dir.mkdir(parents=True, exist_ok=True)
    update: dict[str, object] = {
        "data_dir": work_dir.resolve(),
        "database_url": None,
        "chroma_path": settings.chroma_dir,
        "collection": collection,
        # the sentence vectors live with the index, as the index does (a cache keyed by text: sharing is harmless)
        "embedding": settings.embedding.model_copy(update={"sentence_store_path": settings.sentence_store_file}),
        "handoff_webhook_url": None,
        "rate_limits": "off",
        **overrides,
    }
    return settings.model_copy(update=update)


def helpcenter_workspace(
    settings: Settings,
    work_dir: Path,
    customers: bool = True,
    collection: str = HELPCENTER_COLLECTION,
    customers_path: Path = SAMPLE_CUSTOMERS,
) -> Settings:
    """Settings for a fresh data dir holding the sample help center (Larkspur Home, 34 articles; ingested
    incrementally into `bench_helpcenter`) and, with `customers`, the sample customers."""
    s = scratch_settings(settings, work_dir, collection, company_name=SAMPLE_COMPANY)
    index = build_index(s)
    docs = [d for _, d in iter_folder(SAMPLE_HELPCENTER) if not isinstance(d, Exception)]
    index.ingest(docs, origin="samples", prune=True)
    warm_sentences(s, index)  # as `cxa ingest` does (once: an unchanged index is not walked again)
    if customers:
        store = Store(s.sqlalchemy_url)
        try:
            load_customers(store, customers_path)
        finally:
            store.close()
    return s
