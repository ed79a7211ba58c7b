"""The import direction api -> evals -> assistant -> knowledge, enforced on the source (as datasette's
test_docs checks its own code base). Also: chromadb only in knowledge's index/embeddings, chat-model
libraries only in assistant/llm/ (langchain-openai in the factory, llama.cpp in its model), no print() outside
the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["knowledge", "assistant", "evals", "api"]  # each may import only those before it
FORBIDDEN = {layer: set(LAYERS[i + 1 :]) | {"tests"} for i, layer in enumerate(LAYERS)}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", LAYERS)
def test_imports_point_one_way(package: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(package)
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("chromadb", {"knowledge/index.py", "knowledge/embeddings.py"}),
        ("langchain_openai", {"assistant/llm/factory.py"}),
        ("llama_cpp", {"assistant/llm/llamacpp.py"}),
    ],
)
def test_third_party_edges_stay_in_one_place(library: str, allowed: set[str]) -> None:
    users = {
        str(path.relative_to(ROOT))
        for package in LAYERS
        for path in _modules(package)
        if any(n.split(".")[0] == library for n in _imports(path))
    }
    assert users <= allowed, f"{library} imported outside {allowed}: {users - allowed}"


def test_no_print_outside_the_cli() -> None:
    offenders = []
    for package in LAYERS:
        for path in _modules(package):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def _reads_environment(tree: ast.AST) -> list[int]:
    """Line numbers of os.environ reads (os.environ[...] loads, os.environ.get, os.getenv); writes are fine."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) == "os.environ"
            or isinstance(node, ast.Call)
            and ast.unparse(node.func) in {"os.environ.get", "os.getenv"}
        ):
            lines.append(node.lineno)
    return lines


def test_settings_are_only_read_through_settings() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in LAYERS
        for path in _modules(package)
        for line in _reads_environment(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not readers, readers
