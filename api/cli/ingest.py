"""`cxa ingest`: help articles into the knowledge index; also the sample data that `cxa demo` and
`cxa simulate day` load."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from api.cli.common import DataDir, configure_logging, console, err, fail, load_settings, progress_bars
from assistant.errors import AssistantError
from assistant.settings import Settings
from knowledge.errors import KnowledgeError

if TYPE_CHECKING:
    from assistant.samples import LoadReport
    from knowledge.index import KnowledgeIndex


def ingest_documents(
    settings: Settings,
    path: Path | None,
    doc2dial: bool,
    origin: str | None,
    prune: bool,
    rebuild: bool,
    warm: bool = True,
) -> None:
    """Load the articles at `path` (or doc2dial's documents), ingest them under `origin` and print the report; then,
    with `warm`, the second stage: the sentence vectors of the index (`warm_sentences`)."""
    from assistant.services import build_index
    from knowledge.loaders import iter_folder, load_doc2dial, load_file, supported_suffixes

    if doc2dial:
        source = path or settings.shared_data_dir / "doc2dial" / "documents.jsonl"
        if not source.is_file():
            fail(f"doc2dial documents not found at {source}")
        docs = list(load_doc2dial(source))
        origin = origin or "doc2dial"
        skipped: list[str] = []
    else:
        if path is None:
            fail("give a folder or file to ingest (or --doc2dial)", 2)
        if not path.exists():
            fail(f"{path} does not exist", 2)
        if path.is_file():
            docs = [load_file(path)]  # a single unsupported or unreadable file is an error
            origin, skipped = origin or f"file:{path.stem}", []
            prune = False
        else:
            docs, skipped = [], []
            for p, loaded in iter_folder(path):
                if isinstance(loaded, Exception):
                    skipped.append(f"{p.relative_to(path)}: {loaded}")
                else:
                    docs.append(loaded)
            origin = origin or f"folder:{path.resolve().name}"
            if not docs:
                fail(f"no readable documents in {path} (supported: {', '.join(supported_suffixes())})")

    index = build_index(settings, bulk=True)  # this process only ingests: the model's threads may spin
    if rebuild:
        index.rebuild()
    with progress_bars() as bar:
        task = bar.add_task("embedding", total=None, unit="chunks")

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or 1)

        report = index.ingest(docs, origin=origin, prune=prune, progress=progress)
    table = Table(title=f"ingest {origin}", show_header=True)
    for col in ("added", "updated", "removed", "unchanged", "skipped", "chunks embedded", "chunks/s"):
        table.add_column(col, justify="right")
    table.add_row(
        str(len(report.added)),
        str(len(report.updated)),
        str(len(report.removed)),
        str(len(report.unchanged)),
        str(len(skipped)),
        str(report.chunks_embedded),
        f"{report.chunks_per_second:.1f}" if report.chunks_embedded else "-",
    )
    console.print(table)
    console.print(f"index now holds {index.count()} chunks ({report.seconds:.1f}s)")
    for s in skipped:
        err.print(f"[yellow]skipped[/] {s}")
    if warm:
        warm_sentences(settings, index)


def warm_sentences(settings: Settings, index: KnowledgeIndex) -> None:
    """The second stage of an ingest: the sentences, list items and titles of every chunk that the sentence store
    lacks, embedded and stored (`assistant.services.warm_sentences`), so that turns read them instead of embedding
    them. The chunk index is searchable before this starts; an index unchanged since the last walk is not walked."""
    from assistant.services import warm_sentences as warm

    with progress_bars() as bar:
        task = bar.add_task("sentence vectors", total=None, unit="chunks")

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        report, store = warm(settings, index, progress)
    if store is None:
        return
    if report is None:
        console.print("sentence vectors: up to date")
    elif not report.complete:
        err.print(f"[yellow]sentence vectors not stored[/] ({store.path} cannot be written): turns will embed them")
    else:
        rate = f", {report.texts_per_second:.0f}/s" if report.embedded else ""
        console.print(
            f"sentence vectors: {report.embedded} of {report.texts} texts embedded ({report.seconds:.1f}s{rate})"
        )


def load_samples(settings: Settings) -> LoadReport:
    """Ingest the sample help center and load the sample customers (idempotent); the customers report."""
    from assistant.samples import load_customers
    from assistant.store.repo import Store
    from knowledge.loaders import SAMPLE_HELPCENTER

    try:
        ingest_documents(settings, SAMPLE_HELPCENTER, False, "samples", True, False)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store.from_settings(settings)
        report = load_customers(store)
        store.close()
    except (KnowledgeError, AssistantError) as exc:
        fail(str(exc))
    return report


def ingest(
    path: Annotated[Path | None, typer.Argument(help="folder of .md/.html/.txt articles, or one file")] = None,
    doc2dial: Annotated[
        bool, typer.Option("--doc2dial", help="ingest doc2dial documents.jsonl (PATH or the shared data)")
    ] = False,
    origin: Annotated[str | None, typer.Option(help="label of this source; pruning only touches its documents")] = None,
    prune: Annotated[bool, typer.Option(help="remove documents of this origin that are no longer in PATH")] = True,
    rebuild: Annotated[bool, typer.Option(help="drop the whole index first (after an embedding model change)")] = False,
    warm: Annotated[
        bool,
        typer.Option(
            help="then embed the sentences of the index that the sentence store lacks (a second stage: the index is "
            "searchable before; a server does it in the background otherwise)"
        ),
    ] = True,
    data_dir: DataDir = None,
) -> None:
    """Add, update and remove help articles in the index; unchanged articles are not embedded again. Then the
    sentence vectors turns read (`--no-warm` leaves them to the server)."""
    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    try:
        ingest_documents(settings, path, doc2dial, origin, prune, rebuild, warm)
    except (KnowledgeError, AssistantError, ValueError) as exc:
        fail(str(exc))
