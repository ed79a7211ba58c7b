"""Loaders: help articles from files (Markdown, HTML, plain text) and JSON uploads -> `Document`.

Every loader normalises the text to Markdown-style headings so that one chunker serves all
formats, and drops what a reader of the page never sees but a model would read (a classic hiding
place for prompt injection): HTML comments, hidden HTML elements (see `hidden_element`: the `hidden` and
`aria-hidden` attributes, `display:none`, `visibility:hidden`, zero opacity or font size, zero height or width with
the overflow hidden, off-screen positions and indents, clipping to nothing, zero scale, transparent text, the usual
screen-reader-only classes) and invisible characters (zero-width, bidi controls, Unicode tag characters). A
folder's `source_id`s are the files' paths relative to the folder, without suffix, so moving the folder elsewhere
keeps the ids (and the index) stable.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, Tag
from pydantic import ValidationError

from knowledge.errors import DocumentParseError, UnsupportedDocumentError
from knowledge.types import Document

logger = logging.getLogger(__name__)

SAMPLE_HELPCENTER = Path(__file__).parent / "samples" / "helpcenter"
SUFFIXES: dict[str, str] = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".txt": "text"}
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_ZERO = re.compile(r"^-?0*\.?0*(?:px|em|rem|%|pt|vh|vw|ch|ex)?$")
_FAR = re.compile(r"^-\d{3,}(?:\.\d+)?(?:px|pt)?$|^-\d{2,}(?:\.\d+)?(?:em|rem|vw|vh|%)$")
_CLIPPED = re.compile(
    r"rect\(\s*0[a-z]*[\s,]+0[a-z]*[\s,]+0[a-z]*[\s,]+0[a-z]*\s*\)|rect\(\s*1px[\s,]+1px[\s,]+1px[\s,]+1px\s*\)"
    r"|inset\(\s*(?:50|100)%|circle\(\s*0|ellipse\(\s*0|polygon\(\s*0\S*\s+0\S*\s*\)",
    re.I,
)
_SCALED_AWAY = re.compile(r"scale[xy]?\(\s*0(?:\.0*)?\s*[,)]|translate[xy]?\(\s*-\d{4,}", re.I)
# Screen-reader-only text is never on screen. (A plain `hidden` class is not here: a page's script often shows such
# an element, an accordion's answer, and a stylesheet's meaning of it cannot be known without the stylesheet.)
_HIDDEN_CLASSES = frozenset({"sr-only", "visually-hidden", "visuallyhidden", "screen-reader-text"})


def _declarations(style: str) -> dict[str, str]:
    out = {}
    for part in style.split(";"):
        name, sep, value = part.partition(":")
        if sep:
            out[name.strip().lower()] = value.replace("!important", "").strip().lower()
    return out


def hidden_element(el: Tag) -> bool:
    """Is the element invisible to a reader of the page (so its text is not indexed)? Judged from its attributes and
    inline style only: a stylesheet's rules are not applied."""
    if el.has_attr("hidden") or str(el.get("aria-hidden", "")).lower() == "true":
        return True
    if el.name == "input" and str(el.get("type", "")).lower() == "hidden":
        return True
    classes: str | list[str] = el.get("class") or []
    if any(str(c).lower() in _HIDDEN_CLASSES for c in (classes if isinstance(classes, list) else [classes])):
        return True
    css = _declarations(str(el.get("style", "")))
    if not css:
        return False
    if css.get("display") == "none" or css.get("visibility") in ("hidden", "collapse"):
        return True
    for name in ("opacity", "font-size"):
        if name in css and _ZERO.match(css[name].replace(" ", "")):
            return True
    overflow_hidden = any(css.get(n) in ("hidden", "clip") for n in ("overflow", "overflow-y", "overflow-x"))
    for name in ("height", "max-height", "width", "max-width"):
        if overflow_hidden and name in css and _ZERO.match(css[name]):
            return True
    if css.get("position") in ("absolute", "fixed") and any(
        _FAR.match(css.get(n, "")) for n in ("left", "top", "right", "bottom")
    ):
        return True
    if _FAR.match(css.get("text-indent", "")) or _FAR.match(css.get("margin-left", "")):
        return True
    if _CLIPPED.search(css.get("clip", "")) or _CLIPPED.search(css.get("clip-path", "")):
        return True
    if _SCALED_AWAY.search(css.get("transform", "")):
        return True
    return css.get("color") == "transparent"


def visible_text(text: str) -> str:
    """`text` without invisible characters and HTML comments (what a reader of the article sees)."""
    return _HTML_COMMENT.sub("", _INVISIBLE.sub("", text))


def supported_suffixes() -> list[str]:
    return sorted(SUFFIXES)


def parse_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split `key: value` front matter (between `---` lines) from the body. Nested YAML is not supported."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    meta: dict[str, str] = {}
    for line in m.group(1).splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition(":")
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta, text[m.end() :]


_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def tables_to_text(body: str) -> str:
    """Markdown tables -> a line introducing the rows ("Cost, Time by method:") and a list item per row,
    "- Label: cost value; time value." (a two-column table's row is "- Label: value."), so that a row quoted on its
    own or under its introducing line (an extractive answer, a citation snippet) still says what its cells mean."""
    lines = body.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and _TABLE_ROW.match(lines[i]) and _TABLE_RULE.match(lines[i + 1]):
            header = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            i += 2
            introduced = next((x.strip() for x in reversed(out) if x.strip()), "").endswith(":")
            if header[0] and all(header[1:]) and not introduced:  # a line that introduces the rows, unless the
                out.append(f"{', '.join(header[1:])}, by {header[0].lower()}:")  # text has one ("... by method:")
            while i < len(lines) and _TABLE_ROW.match(lines[i]):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if len(header) == 2:  # one value a row: the introducing line names it
                    parts = cells[1:2] if len(cells) > 1 and cells[1] else []
                else:
                    parts = [f"{h.lower()} {c}" if h else c for h, c in zip(header[1:], cells[1:], strict=False) if c]
                row = f"{cells[0]}: " + "; ".join(parts) if parts else cells[0]
                out.append("- " + row.rstrip(".") + ".")
                i += 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def load_markdown(raw: str, source_id: str) -> Document:
    meta, body = parse_front_matter(visible_text(raw))
    body = tables_to_text(body)
    title = meta.pop("title", "") or _first_h1(body) or _title_from_id(source_id)
    url = meta.pop("url", None) or None
    return Document(source_id=source_id, title=title, url=url, text=body.strip(), format="markdown", metadata=meta)


def load_html(raw: str, source_id: str) -> Document:
    """HTML -> Markdown-ish text: headings become `#` lines, list items `- `, paragraphs blank-line separated."""
    soup = BeautifulSoup(_INVISIBLE.sub("", raw), "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript", "template"]):
        tag.decompose()
    hidden = [el for el in soup.find_all(True) if hidden_element(el)]
    for el in hidden:
        if not el.decomposed:
            el.decompose()
    title = ""
    if soup.title and soup.title.string:
        title = soup.title.string.strip()
    canonical = soup.find("link", rel="canonical")
    url = canonical.get("href") if canonical else None
    body = soup.body or soup
    blocks: list[str] = []
    for el in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "th", "dt", "dd"]):
        if el.find_parent(["li", "p", "td", "th"]) is not None and el.name not in {"h1", "h2", "h3", "h4"}:
            continue  # nested block: its text is already part of the parent's
        text = " ".join(el.get_text(" ", strip=True).split())
        if not text:
            continue
        if el.name[0] == "h":
            blocks.append("#" * int(el.name[1]) + " " + text)
            if el.name == "h1" and not title:
                title = text
        elif el.name == "li":
            blocks.append("- " + text)
        else:
            blocks.append(text)
    text = "\n\n".join(blocks).strip()
    if not text:
        raise DocumentParseError(f"{source_id}: the HTML page has no readable text")
    return Document(
        source_id=source_id,
        title=title or _title_from_id(source_id),
        url=str(url) if url else None,
        text=text,
        format="html",
    )


def load_text(raw: str, source_id: str) -> Document:
    """Plain text: the first non-empty line is the title when a blank line follows it."""
    raw = _INVISIBLE.sub("", raw)
    lines = raw.strip().splitlines()
    title = _title_from_id(source_id)
    body = raw.strip()
    if len(lines) >= 3 and lines[0].strip() and not lines[1].strip():
        title = lines[0].strip()
        body = "\n".join(lines[2:]).strip()
    return Document(source_id=source_id, title=title, text=body, format="text")


_LOADERS = {"markdown": load_markdown, "html": load_html, "text": load_text}


def load_file(path: Path, source_id: str | None = None) -> Document:
    """Load one file; raises `UnsupportedDocumentError` or `DocumentParseError` with a clear message."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UnsupportedDocumentError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'!r}; "
            f"supported: {', '.join(supported_suffixes())}"
        )
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentParseError(f"{path.name}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise DocumentParseError(f"{path.name}: cannot be read ({exc.strerror})") from exc
    if not raw.strip():
        raise DocumentParseError(f"{path.name}: the file is empty")
    try:
        return _LOADERS[kind](raw, source_id or path.stem)
    except ValidationError as exc:
        raise DocumentParseError(f"{path.name}: {exc.errors()[0]['msg']}") from exc


def load_bytes(data: bytes, filename: str, source_id: str | None = None) -> Document:
    """Load an uploaded file's bytes by its filename's suffix."""
    kind = SUFFIXES.get(Path(filename).suffix.lower())
    if kind is None:
        raise UnsupportedDocumentError(
            f"{filename}: unsupported file type; supported: {', '.join(supported_suffixes())}"
        )
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentParseError(f"{filename}: not UTF-8 text") from exc
    if not raw.strip():
        raise DocumentParseError(f"{filename}: the file is empty")
    try:
        return _LOADERS[kind](raw, source_id or Path(filename).stem)
    except ValidationError as exc:
        raise DocumentParseError(f"{filename}: {exc.errors()[0]['msg']}") from exc


def iter_folder(root: Path) -> Iterator[tuple[Path, Document | Exception]]:
    """Every file under `root` (sorted), loaded; failures are yielded as the exception, not raised,
    so that one bad file does not stop an ingest of hundreds."""
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        source_id = path.relative_to(root).with_suffix("").as_posix()
        try:
            yield path, load_file(path, source_id)
        except (UnsupportedDocumentError, DocumentParseError) as exc:
            yield path, exc


def document_from_json(payload: bytes | str | dict[str, object]) -> Document:
    """The JSON upload of API.md: `{"source_id", "title", "url"?, "text"}` (Markdown text)."""
    try:
        data = json.loads(payload) if isinstance(payload, (bytes, str)) else payload
    except json.JSONDecodeError as exc:
        raise DocumentParseError(f"malformed JSON: {exc.msg} at line {exc.lineno}") from exc
    except UnicodeDecodeError as exc:  # bytes in no encoding JSON allows (UTF-8/16/32)
        raise DocumentParseError(f"malformed JSON: not UTF-8 text ({exc.reason})") from exc
    if not isinstance(data, dict):
        raise DocumentParseError("expected a JSON object with source_id, title and text")
    for key in ("title", "text"):
        if isinstance(value := data.get(key), str):
            data[key] = visible_text(value)
    try:
        return Document.model_validate({"format": "markdown", **data})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DocumentParseError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


def load_doc2dial(path: Path) -> Iterator[Document]:
    """doc2dial `documents.jsonl`: one page per line, `doc_id` like 'Title#3_0'. The text is kept
    exactly as given (no normalisation) so the dataset's span offsets stay valid for benchmarks."""
    with path.open(encoding="utf-8", errors="strict") as fh:
        lines = _lines_or_fail(fh, path)
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                doc_id = row["doc_id"]
                yield Document(
                    source_id=doc_id,
                    title=doc_id.split("#", 1)[0].strip() or doc_id,
                    url=None,
                    text=row["doc_text"],
                    format="text",
                    metadata={"domain": str(row.get("domain", "")), "dataset": "doc2dial"},
                )
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValidationError) as exc:
                raise DocumentParseError(f"{path.name} line {n}: not a doc2dial document ({exc})") from exc


def _lines_or_fail(fh: Any, path: Path) -> list[str]:
    try:
        return list(fh)
    except UnicodeDecodeError as exc:
        raise DocumentParseError(f"{path.name}: not UTF-8 text ({exc.reason})") from exc


def _first_h1(body: str) -> str:
    m = _H1.search(body)
    return m.group(1).strip() if m else ""


def _title_from_id(source_id: str) -> str:
    return source_id.rsplit("/", 1)[-1].replace("-", " ").replace("_", " ").strip().capitalize() or source_id
