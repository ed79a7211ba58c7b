"""The schema revisions, oldest first: append-only, each named `NNNN_what_it_does.py` (see the README's
"Development" section for how to add one)."""
