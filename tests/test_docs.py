"""The docs stay true to the code, as datasette's tests/test_docs.py keeps its own: every setting is on the
configuration page, every CLI command in the CLI reference, every route of the app on the HTTP API page, the
generated blocks are what the code generates now; and the README stays a front door whose two commands are the
Makefile's. `make test` also builds the site with `mkdocs build --strict`, which fails on a broken link."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
from pydantic import BaseModel

from api.app import create_app
from api.cli import app as cli_app
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
README_MAX_LINES = 150


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _docs_reference() -> ModuleType:
    """scripts/docs_reference.py, loaded by path (scripts/ is not a package, and a `scripts` elsewhere on
    sys.path must not stand in for ours)."""
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- configuration -----------------------------------------------------------------------------------------


def _env_names(model: type[BaseModel], prefix: str = "CXA_") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            names.extend(_env_names(ann, f"{prefix}{name.upper()}__"))
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_every_setting_is_documented() -> None:
    page = _page("configuration.md")
    missing = [n for n in _env_names(Settings) if f"| `{n}` |" not in page]
    assert not missing, f"not in docs/configuration.md (run scripts/docs_reference.py --write): {missing}"


@pytest.mark.parametrize("name", ["settings", "cli"])
def test_generated_blocks_are_current(name: str) -> None:
    reference = _docs_reference()
    page, generate = reference.GENERATED[name]
    assert reference.committed(name) == generate(), (
        f"{page.relative_to(ROOT)} is stale: run .venv/bin/python scripts/docs_reference.py --write and commit it"
    )


# -- CLI ---------------------------------------------------------------------------------------------------


def _commands(command: Any, path: str = "cxa") -> list[tuple[str, Any]]:
    """Every visible command and group of the Typer app, as click sees it (whichever module defines it)."""
    if command.hidden:
        return []
    found = [(path, command)]
    for name, sub in (getattr(command, "commands", None) or {}).items():
        found.extend(_commands(sub, f"{path} {name}"))
    return found


def _sections(page: str) -> dict[str, str]:
    """The CLI page's sections by command path: the text from a `## `cxa ...`` heading to the next heading."""
    parts = re.split(r"^#{2,3} `(cxa[^`]*)`\n", page, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _param_names(param: Any) -> list[str]:
    """How the reference names a parameter: its option strings (`--prune`, `--no-prune`), or an argument's
    metavar (`PATH`)."""
    names = [*param.opts, *param.secondary_opts]
    return names if any(n.startswith("-") for n in names) else [param.name.upper()]


def test_every_cli_command_is_documented() -> None:
    commands = _commands(typer.main.get_command(cli_app))
    assert len(commands) > 20, "the walk found too few commands: is api.cli.app still the whole CLI?"
    sections = _sections(_page("cli.md"))
    missing = [path for path, _ in commands if path not in sections]
    assert not missing, f"not in docs/cli.md (run scripts/docs_reference.py --write): {missing}"
    undocumented = [
        f"{path} {name}"
        for path, command in commands
        for param in command.params
        if not getattr(param, "hidden", False)
        for name in _param_names(param)
        if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", sections[path])
    ]
    assert not undocumented, f"options missing from their command's section of docs/cli.md: {undocumented}"


# -- HTTP routes -------------------------------------------------------------------------------------------


def _normalise(path: str) -> str:
    """`/v1/conversations/{conversation_id}` and `/v1/conversations/{id}` are the same route; `/web/*` is a mount."""
    return re.sub(r"\{[^}]*\}|\*", "{}", path)


def _app_routes(routes: list[Any], prefix: str = "") -> set[tuple[str, str]]:
    """(method, path) of every route, walking included routers whichever way FastAPI keeps them: flattened into
    the app's routes (older versions), or as one route per included router (`original_router`, newer ones)."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if hasattr(route, "original_router"):
            found |= _app_routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif getattr(route, "methods", None):
            found |= {(m, _normalise(prefix + route.path)) for m in route.methods if m != "HEAD"}
        elif hasattr(route, "path"):  # a mount (static files): GET below it
            found.add(("GET", _normalise(prefix + route.path + "/*")))
    return found


def test_every_route_is_in_the_api_page(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, chat_provider="fake"))  # built, not started: nothing is opened
    routes = _app_routes(app.routes)
    assert ("POST", "/v1/conversations/{}/messages") in routes, "the route walk missed the API's routes"
    documented = {
        (method, _normalise(path))
        for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?\[]*)", _page("api.md"))
    }
    missing = sorted(f"{m} {p}" for m, p in routes - documented)
    assert not missing, f"routes of the app missing from docs/api.md: {missing}"
    gone = sorted(f"{m} {p}" for m, p in documented - routes)
    assert not gone, f"docs/api.md documents routes the app does not have: {gone}"


# -- the README --------------------------------------------------------------------------------------------


def test_the_readme_commands_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert f"make {target}" in README
        assert f"\n{target}:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_is_a_front_door() -> None:
    lines = README.count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move the detail into docs/ and link to it"


def test_the_readme_links_resolve() -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert relative, "the README links into docs/"
    broken = [link for link in relative if not (ROOT / link).exists()]
    assert not broken, f"README.md links to missing files: {broken}"
