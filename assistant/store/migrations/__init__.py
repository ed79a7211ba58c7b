"""Alembic's script directory for the SQL store: `env.py`, the revision template and `versions/`.

Run it through `assistant.store.migrate` (the `Store` at start, `cxa db ...`), never with an alembic.ini:
the configuration is built in code, and the connection is handed to `env.py`. A package (with
`__init__.py` files) so that the revisions ship with the code; alembic skips `__init__.py` as a revision.
"""
