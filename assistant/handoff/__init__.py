"""Handing a conversation to a person: the handoff service, its summary, the agent desk and the webhook."""
