"""Approved answers: a person's answer to a question, served word for word to the customers who ask it.

- `matcher.py`: a customer's message against every active approved question and variant (the offline embedding
  model), above `CXA_APPROVED__MIN_SCORE` served verbatim by the engine, below it one more retrieval source.
- `checks.py`: what a person should look at before trusting one (it contradicts the help center, HTML in it).
- `service.py`: create, edit, retire, list, with validation, duplicate detection, flags and staleness.
"""
