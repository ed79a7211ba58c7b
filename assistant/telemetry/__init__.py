"""Effort and resolution signals, the conversation facts derived from them, topics and metrics export."""
