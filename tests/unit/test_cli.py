"""The `cxa` command line, run in-process with typer's runner on temp data dirs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from typer.testing import CliRunner

from api.cli import app
from tests.conftest import backend_env

runner = CliRunner()


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    (folder / "billing").mkdir(parents=True)
    (folder / "billing" / "refunds.md").write_text(
        "---\ntitle: Refunds\nurl: https://help.example/refunds\n---\n# Refunds\n\n"
        "## Timelines\n\nCard refunds take 5-10 business days after we receive the item.\n"
    )
    (folder / "shipping.txt").write_text("Shipping\n\nStandard delivery takes 3-5 business days and costs 4.95.\n")
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4 not an article")
    return folder


def test_ingest_reports_and_is_incremental(articles: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = backend_env(data)
    first = runner.invoke(app, ["ingest", str(articles), "--data-dir", str(data)], env=env)
    assert first.exit_code == 0, first.output
    assert "added" in first.output and "notes.pdf" in first.output  # the unsupported file is reported, not fatal
    assert "index now holds 2 chunks" in first.output
    # the second stage: the chunks' sentences and titles, for the turns to read
    assert "sentence vectors: 4 of 4 texts embedded" in first.output, first.output
    assert (data / "sentence-vectors.sqlite").is_file()
    again = runner.invoke(app, ["ingest", str(articles), "--data-dir", str(data)], env=env)
    assert again.exit_code == 0
    assert "index now holds 2 chunks" in again.output
    assert "sentence vectors: up to date" in again.output
    row = next(line for line in again.output.splitlines() if line.count("│") >= 7 and any(ch.isdigit() for ch in line))
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[:4] == ["0", "0", "0", "2"], cells  # added, updated, removed, unchanged
    (articles / "shipping.txt").unlink()
    pruned = runner.invoke(app, ["ingest", str(articles), "--data-dir", str(data)], env=env)
    assert "index now holds 1 chunks" in pruned.output


def test_bad_ingest_input_fails_clearly(articles: Path, tmp_path: Path) -> None:
    data, env = ["--data-dir", str(tmp_path / "data")], backend_env(tmp_path / "data")
    unsupported = runner.invoke(app, ["ingest", str(articles / "notes.pdf"), *data], env=env)
    assert unsupported.exit_code == 1 and "unsupported file type" in unsupported.output
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope"), *data], env=env)
    assert missing.exit_code == 2 and "does not exist" in missing.output
    nothing = runner.invoke(app, ["ingest", *data], env=env)
    assert nothing.exit_code == 2


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "demo", "ingest", "chat", "bench"):
        assert command in result.output


def test_a_bad_setting_is_named_with_its_value_not_a_traceback(tmp_path: Path) -> None:
    env = {**backend_env(tmp_path / "data"), "CXA_DATABASE_POOL_SIZE": "0", "CXA_EMBEDDING__BATCH_TOKENS": "abc"}
    r = runner.invoke(app, ["serve", "--data-dir", str(tmp_path / "data")], env=env)
    assert r.exit_code == 2, r.output
    assert "invalid settings" in r.output
    assert "CXA_DATABASE_POOL_SIZE='0': Input should be greater than or equal to 1" in r.output
    assert "CXA_EMBEDDING__BATCH_TOKENS='abc'" in r.output
    assert "Traceback" not in r.output


def test_every_command_and_option_says_what_it_does() -> None:
    import typer

    def commands(group: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, group
        for name, sub in getattr(group, "commands", {}).items():
            yield from commands(sub, f"{path} {name}")

    silent = [
        f"{path} {param.name}" if param is not None else path
        for path, command in commands(typer.main.get_command(app), "cxa")
        for param in [None, *(p for p in command.params if p.name != "help")]
        if not (command.help if param is None else getattr(param, "help", None))
    ]
    assert not silent, silent
    for path, _ in commands(typer.main.get_command(app), "cxa"):
        r = runner.invoke(app, [*path.split()[1:], "--help"])
        assert r.exit_code == 0, (path, r.output)


def test_configured_tokens_are_never_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 7: `cxa serve` printed configured staff tokens ("kept in keys.json" though none was written)."""
    from api.cli.serve import print_keys
    from tests.conftest import ADMIN_TOKEN, AGENT_TOKEN, CX_TOKEN, WIDGET_KEY, make_settings

    print_keys(make_settings(tmp_path / "configured"), "127.0.0.1", 8000)
    said = capsys.readouterr().out.replace("\n", "")  # rich folds long lines
    for token in (WIDGET_KEY, AGENT_TOKEN, CX_TOKEN, ADMIN_TOKEN):
        assert token not in said
    assert "keys.json" not in said and "CXA_ADMIN_TOKEN" in said
    # generated ones are printed (a newcomer needs them) and said to be kept in keys.json, which exists
    generated = make_settings(tmp_path / "generated", admin_token=None)
    print_keys(generated, "127.0.0.1", 8000)
    said = capsys.readouterr().out.replace("\n", "")
    kept = json.loads((generated.data_dir / "keys.json").read_text())
    assert "keys.json" in said and "admin token:" in said and AGENT_TOKEN not in said
    assert list(kept) == ["admin_token"] and kept["admin_token"] in said


def test_short_secrets_are_refused_beyond_loopback(tmp_path: Path) -> None:
    env = {**backend_env(tmp_path / "data"), "CXA_ADMIN_TOKEN": "admin-short", "CXA_IDENTITY_SECRET": "s3cret-15-chars"}
    r = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "data")], env=env)
    assert r.exit_code == 2, r.output
    assert "CXA_ADMIN_TOKEN, CXA_IDENTITY_SECRET: at least 16 characters" in r.output
    assert "admin-short" not in r.output
