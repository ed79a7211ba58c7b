"""`cxa`: serve the API, load the demo, ingest knowledge, chat in the terminal, run benchmarks.

Every command reads the same `Settings` (CXA_* variables or .env); `--data-dir` overrides
CXA_DATA_DIR. Errors are printed as one clear line and exit with a non-zero code.

This module only assembles the commands, one module per command group (as rasa's `rasa/cli/` does):
`ingest.py` (cxa ingest), `serve.py` (serve, demo), `chat.py` (chat), `data.py` (export, doctor),
`bench.py` (cxa bench ...), `train.py` (cxa train ...), `simulate.py` (cxa simulate ...), `evaluate.py`
(cxa eval ...) and `db.py` (cxa db ...). What they share (consoles, settings, the error exit, progress bars,
the figures table) is `common.py`.
"""

from __future__ import annotations

import sys

import typer

from api.cli import bench, chat, data, db, evaluate, ingest, serve, simulate, train

__all__ = ["app", "main"]

app = typer.Typer(
    help="cx-assistant: a support assistant with CX telemetry and human handoff.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(ingest.ingest)
app.command()(serve.serve)
app.command()(serve.demo)
app.command()(chat.chat)
app.command()(data.export)
app.command()(data.doctor)
app.add_typer(bench.app, name="bench")
app.add_typer(simulate.app, name="simulate")
app.add_typer(evaluate.app, name="eval")
app.add_typer(db.app, name="db")
app.add_typer(train.app, name="train")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
