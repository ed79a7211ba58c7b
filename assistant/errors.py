"""Errors of the assistant layer. Each docstring says what the user sees; `api.errors` maps them to
HTTP responses in one place (`code` is the JSON error code)."""

from __future__ import annotations


class AssistantError(Exception):
    """Base class: the message is shown to the caller as is."""

    code = "assistant_error"
    status = 500


class NotFoundError(AssistantError):
    code = "not_found"
    status = 404


class ConversationNotFoundError(NotFoundError):
    """The conversation id is unknown: 404 `conversation_not_found`."""

    code = "conversation_not_found"

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"no conversation with id {conversation_id!r}")


class HandoffNotFoundError(NotFoundError):
    """The handoff id is unknown: 404 `handoff_not_found`."""

    code = "handoff_not_found"

    def __init__(self, handoff_id: str) -> None:
        super().__init__(f"no handoff with id {handoff_id!r}")


class CustomerNotFoundError(NotFoundError):
    """The customer id is unknown: 404 `customer_not_found`."""

    code = "customer_not_found"

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"no customer with id {customer_id!r}")


class ConflictError(AssistantError):
    """The request does not fit the conversation's current state: 409 `conflict`."""

    code = "conflict"
    status = 409


class StoreUnavailableError(AssistantError):
    """The database is locked or unreachable: 503 `store_unavailable` (retry later; nothing was lost)."""

    code = "store_unavailable"
    status = 503


class ModelUnavailableError(AssistantError):
    """The chat model failed (load error, timeout, provider error): the turn is handed to a person."""

    code = "model_unavailable"
    status = 503


class ModelSlowError(ModelUnavailableError):
    """The model did not start answering within its first-token deadline: the customer gets the best quote from
    the help center at once (or a handoff when there is none), and the generation is cancelled."""

    code = "model_slow"


class ModelBusyError(ModelSlowError):
    """The embedded model is answering other customers and did not come free in time: as a slow model."""

    code = "model_busy"


class InvalidRequestError(AssistantError):
    """The request is well-formed but asks for something impossible: 422 `invalid_request` with the reason."""

    code = "invalid_request"
    status = 422


class InvalidPeriodError(InvalidRequestError):
    """A period whose start is not before its end, or one cut into too many buckets: 422 `invalid_request`."""


class ApprovedAnswerNotFoundError(NotFoundError):
    """The approved answer id is unknown: 404 `approved_answer_not_found`."""

    code = "approved_answer_not_found"

    def __init__(self, answer_id: str) -> None:
        super().__init__(f"no approved answer with id {answer_id!r}")


class DuplicateQuestionError(ConflictError):
    """An active approved answer already has this question (or it as a variant): 409 `duplicate_question`; edit
    that one (its id is in the message) or retire it first."""

    code = "duplicate_question"

    def __init__(self, question: str, existing_id: str) -> None:
        self.existing_id = existing_id
        super().__init__(f"the approved answer {existing_id} already answers {question!r}: edit it or retire it first")


class InvalidApprovedAnswerError(InvalidRequestError):
    """An approved answer that cannot be stored as given (blank after clean-up, a credential in it...):
    422 `invalid_approved_answer` with the reason."""

    code = "invalid_approved_answer"


class GapNotFoundError(NotFoundError):
    """No knowledge gap with that id in the period asked: 404 `gap_not_found` (gap ids follow their first
    question: the same period, or a longer one, finds it)."""

    code = "gap_not_found"

    def __init__(self, gap_id: str) -> None:
        super().__init__(f"no knowledge gap {gap_id!r} in this period")
