"""Errors of the knowledge layer. Each docstring says what the user is shown."""

from __future__ import annotations


class KnowledgeError(Exception):
    """Base class; the message is shown to the user as is."""


class UnsupportedDocumentError(KnowledgeError):
    """A file type the loaders cannot read (shown with the supported types)."""


class DocumentParseError(KnowledgeError):
    """A file or upload whose content could not be read (empty, undecodable, malformed JSON)."""


class IndexUnavailableError(KnowledgeError):
    """The Chroma index cannot be opened or reached (missing or corrupt directory, server down)."""


class IndexMismatchError(KnowledgeError):
    """The index was built with another embedding model; it must be re-built with `cxa ingest --rebuild`."""


class EmbeddingModelError(KnowledgeError):
    """The offline embedding model files are missing or cannot be loaded."""
