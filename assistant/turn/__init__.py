"""One customer turn, step by step: the engine and each step it calls (history, rewrite, intent, answer,
grounding, confidence)."""
