"""Print the README's configuration table from `Settings` (run: .venv/bin/python scripts/settings_table.py --write)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydantic import BaseModel

from assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def rows(model: type[BaseModel], prefix: str = "CXA_") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(rows(ann, f"{prefix}{name.upper()}__"))
            continue
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        if hasattr(default, "get_secret_value"):
            default = "(secret)"
        shown = "—" if default is None else "[]" if default == [] else default
        out.append(f"| `{prefix}{name.upper()}` | `{shown}` | {(field.description or '').replace('|', '/')} |")
    return out


def table() -> str:
    return "| variable | default | meaning |\n| --- | --- | --- |\n" + "\n".join(rows(Settings))


if __name__ == "__main__":
    if "--write" in sys.argv:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        new = re.sub(r"\| variable \| default \| meaning \|\n(?:\|.*\|\n)+", table() + "\n", text, count=1)
        readme.write_text(new, encoding="utf-8")
    else:
        sys.stdout.write(table() + "\n")
