"""`cxa train ...`: models the assistant ships, fitted on the public dev datasets.

`cxa train answerability` collects the examples (doc2dial dev turns with the gold page present and removed,
CLINC150 dev in-scope and out-of-scope queries, through the engine's own retrieval and extractive answerer),
measures the model out of fold (folds grouped by page and by intent), fits it on every example and writes the
artifact the engine loads: by default the one shipped in the package (assistant/turn/answerability.json), so
that a retrieval change is followed by this one command and a commit. Same code, data and seed: same artifact
(but its version carries the day it was trained).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.cli.bench import print_handoff, run_bench
from api.cli.common import DataDir, SharedData, console, write_figures
from assistant.settings import Settings

if TYPE_CHECKING:
    from evals.answerability import Example
    from evals.bench.handoff import HandoffRun

app = typer.Typer(help="Fit the models the assistant ships on the public dev datasets.", no_args_is_help=True)


@app.command("answerability")
def train_answerability(
    limit: Annotated[
        int | None, typer.Option(min=1, help="sample N doc2dial turns and N CLINC queries (quick look, not to ship)")
    ] = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="write the artifact here (default: the package's answerability.json)")
    ] = None,
    examples: Annotated[
        Path | None,
        typer.Option(help="reuse examples written by an earlier run (JSONL) instead of collecting them again"),
    ] = None,
    data: SharedData = None,
    data_dir: DataDir = None,
) -> None:
    """The answerability model behind the turn confidence: collect, cross-validate, fit, write the artifact."""
    from assistant.turn.answerability import SHIPPED
    from evals.answerability import read_examples, write_artifact, write_examples
    from evals.bench.handoff import collect, evaluate

    def run(st: Settings, path: Path, progress: Any) -> tuple[list[Example], HandoffRun]:
        rows = read_examples(examples) if examples else collect(st, path, limit, seed, progress)
        return rows, evaluate(st, rows, train_artifact=True)

    settings, (rows, result) = run_bench(data_dir, data, run)
    if examples is None:
        console.print(
            f"examples written to {write_examples(rows, settings.data_dir / 'bench' / 'answerability.jsonl')}"
        )
    print_handoff(result)
    assert result.trained is not None
    target = write_artifact(result.trained, out or SHIPPED)
    console.print(f"model {result.trained.version} written to {target}")
    write_figures(settings, "handoff", result.model_dump(mode="json", exclude={"trained"}), None)
