"""The generated parts of the docs: the configuration table (from `assistant.settings.Settings`) and the CLI
reference (from the Typer app `api.cli.app`, walked as a click command tree).

Each lives between two markers in a committed page, so the page's prose stays hand-written and the reference
cannot drift: `tests/test_docs.py` fails when a committed block differs from what this module generates now.

    .venv/bin/python scripts/docs_reference.py --write    # regenerate the blocks in docs/
    .venv/bin/python scripts/docs_reference.py --check    # exit 1 when a block is stale (what the test checks)
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BEGIN = "<!-- BEGIN GENERATED {name}: do not edit; run .venv/bin/python scripts/docs_reference.py --write -->"
END = "<!-- END GENERATED {name} -->"


# -- settings ----------------------------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return " \\| ".join(_type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(annotation))}]"
    if annotation is type(None):
        return "None"
    if annotation is SecretStr:
        return "secret"
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = [(annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", "≥"), (annotated_types.Lt, "lt", "<"),
           (annotated_types.Le, "le", "≤")]  # fmt: skip


def _type_cell(field: FieldInfo) -> str:
    """The type, with the bounds pydantic enforces (`ge=1` -> `int ≥ 1`)."""
    bounds = [
        f"{sign} {getattr(m, attr)}" for m in field.metadata for kind, attr, sign in _BOUNDS if isinstance(m, kind)
    ]
    return _type_name(field.annotation) + (f" ({', '.join(bounds)})" if bounds else "")


def _text(text: str | None) -> str:
    """Help or description text as one Markdown table cell: on one line, `|` escaped, and `<` `>` outside code
    spans escaped (else `<data_dir>` would be read as an HTML tag and vanish)."""
    pieces = " ".join((text or "").split()).replace("|", "\\|").split("`")
    for i in range(0, len(pieces), 2):
        pieces[i] = pieces[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(pieces)


def _default_cell(field: FieldInfo) -> str:
    default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
    if default is None:
        return "—"
    if isinstance(default, SecretStr):
        return "(secret)"
    if isinstance(default, Path) and default.is_absolute():  # a path inside the checkout, shown relative to it
        default = default.relative_to(ROOT) if default.is_relative_to(ROOT) else default
    return f"`{default}`"


def _group(model: type[BaseModel], prefix: str) -> tuple[list[str], list[tuple[str, str, type[BaseModel]]]]:
    """The rows of `model`'s own fields, and its nested groups as (env prefix, field name, model)."""
    rows, groups = [], []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            groups.append((f"{prefix}{name.upper()}__", name, ann))
            continue
        rows.append(
            f"| `{prefix}{name.upper()}` | {_type_cell(field)} | {_default_cell(field)} | {_text(field.description)} |"
        )
    return rows, groups


_HEADER = "| variable | type | default | meaning |\n| --- | --- | --- | --- |\n"


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def settings_reference() -> str:
    """Every `CXA_*` variable: the top-level ones in one table, then one table per nested group."""
    from assistant.settings import Settings

    rows, groups = _group(Settings, "CXA_")
    out = ["### Top level {#top-level}", "", _HEADER + "\n".join(rows)]
    for prefix, name, model in groups:
        sub_rows, nested = _group(model, prefix)
        assert not nested, f"{prefix}: groups nest one level deep (see assistant/settings.py)"
        out += ["", f"### `{prefix}*` {{#{name}}}", ""]
        if _doc(model):
            out += [_doc(model), ""]
        out.append(_HEADER + "\n".join(sub_rows))
    return "\n".join(out)


# -- CLI ---------------------------------------------------------------------------------------------------


def cli_commands() -> Iterator[tuple[str, Any]]:
    """(command path, click command) for every visible command and group of `cxa`, depth first in the order
    they were registered. Works on the click objects Typer builds (`typer.main.get_command`), so it does not
    care which module of `api.cli` defines a command."""
    import typer

    from api.cli import app

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        if command.hidden:
            return
        yield path, command
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from walk(sub, f"{path} {name}")

    yield from walk(typer.main.get_command(app), "cxa")


def _visible_params(command: Any) -> list[Any]:
    return [p for p in command.params if not getattr(p, "hidden", False)]


def _is_argument(param: Any) -> bool:
    return not any(o.startswith("-") for o in param.opts)


def _usage(path: str, command: Any) -> str:
    pieces = [path]
    if getattr(command, "commands", None):
        pieces.append("COMMAND")
    if any(not _is_argument(p) for p in _visible_params(command)):
        pieces.append("[OPTIONS]")
    for p in _visible_params(command):
        if _is_argument(p):
            name = p.name.upper() + ("..." if p.nargs != 1 else "")
            pieces.append(name if p.required else f"[{name}]")
    return " ".join(pieces)


def _param_default(param: Any) -> str:
    if param.required:
        return "required"
    default = param.default
    if default is None or (getattr(param, "multiple", False) and not default):
        return "—"
    if getattr(param, "is_flag", False):
        if param.secondary_opts:
            return f"`{(param.opts if default else param.secondary_opts)[0]}`"
        return "on" if default else "off"
    if isinstance(default, Path) and default.is_absolute() and default.is_relative_to(ROOT):
        default = default.relative_to(ROOT)  # a file of the checkout, not this machine's path to it
    return f"`{default}`"


def _param_row(param: Any) -> str:
    if _is_argument(param):
        name = f"`{param.name.upper()}`"
    else:
        name = " / ".join(f"`{o}`" for o in [", ".join(param.opts), *param.secondary_opts])
    help_text = _text(getattr(param, "help", None))
    if getattr(param, "multiple", False):
        help_text += " (repeatable)"
    return f"| {name} | {_param_default(param)} | {help_text} |"


def _help_paragraphs(command: Any) -> str:
    text = (command.help or "").replace("\b\n", "")
    paragraphs = [_text(p) for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(paragraphs)


def cli_reference() -> str:
    """One section per command: what it does (its help text), usage, and its arguments and options."""
    out: list[str] = []
    for path, command in cli_commands():
        level = 1 + max(path.count(" "), 1)  # cxa and its commands ##, a group's commands ###
        out += [f"{'#' * level} `{path}`", ""]
        if _help_paragraphs(command):
            out += [_help_paragraphs(command), ""]
        out += ["```", _usage(path, command), "```", ""]
        subcommands = {n: c for n, c in (getattr(command, "commands", None) or {}).items() if not c.hidden}
        if subcommands:
            out += ["| command | what it does |", "| --- | --- |"]
            for name, sub in subcommands.items():
                first = _help_paragraphs(sub).split("\n\n")[0]
                out.append(f"| [`{path} {name}`](#{_slug(f'{path} {name}')}) | {first} |")
            out.append("")
        params = _visible_params(command)
        if params:
            out += ["| argument / option | default | meaning |", "| --- | --- | --- |"]
            out += [_param_row(p) for p in params]
            out.append("")
    return "\n".join(out).rstrip()


def _slug(path: str) -> str:
    """The anchor MkDocs (toc's default slugify) gives the heading `` `path` ``."""
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", path).strip().lower())


# -- the pages ---------------------------------------------------------------------------------------------

GENERATED: dict[str, tuple[Path, Callable[[], str]]] = {
    "settings": (DOCS / "configuration.md", settings_reference),
    "cli": (DOCS / "cli.md", cli_reference),
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(BEGIN.format(name=name)) + r"\n(.*?)\n?" + re.escape(END.format(name=name)), re.S)


def committed(name: str) -> str:
    """The generated block `name` as committed in its page."""
    page, _ = GENERATED[name]
    match = _block(name).search(page.read_text(encoding="utf-8"))
    if match is None:
        raise LookupError(f"{page.relative_to(ROOT)} has no {BEGIN.format(name=name)!r} ... {END.format(name=name)!r}")
    return match.group(1)


def write(name: str) -> bool:
    """Regenerate block `name` in its page; True when the page changed."""
    page, generate = GENERATED[name]
    text = page.read_text(encoding="utf-8")
    committed(name)  # the markers must be there
    new = _block(name).sub(lambda _: f"{BEGIN.format(name=name)}\n{generate()}\n{END.format(name=name)}", text, count=1)
    if new != text:
        page.write_text(new, encoding="utf-8")
    return new != text


def stale() -> list[str]:
    """The pages whose generated block differs from what the code generates now."""
    return [str(page.relative_to(ROOT)) for name, (page, gen) in GENERATED.items() if committed(name) != gen()]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the checkout's packages, not an installed copy
    if "--write" in sys.argv:
        changed = [str(GENERATED[n][0].relative_to(ROOT)) for n in GENERATED if write(n)]
        sys.stdout.write(f"updated: {', '.join(changed)}\n" if changed else "up to date\n")
    elif "--check" in sys.argv:
        pages = stale()
        sys.stdout.write(f"stale: {', '.join(pages)} (run with --write)\n" if pages else "up to date\n")
        sys.exit(1 if pages else 0)
    else:
        sys.stdout.write(settings_reference() + "\n\n" + cli_reference() + "\n")
