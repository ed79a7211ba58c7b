"""Hardening: idempotency keys of the customer's POSTs, and the customer's own words beside a handoff's reason.

- `idempotency_keys`: one row per (scope, key) of a POST sent with `Idempotency-Key`, with the request's fingerprint
  and, once it finished, its response (assistant/store/idempotency.py).
- `handoffs.customer_note`: a handoff's `reason` is a label from a fixed set (`assistant.models.HANDOFF_REASONS`);
  what a customer typed asking for a person goes here. Rows whose reason was such free text get the label
  `customer_request` and keep their text as the note.
- `messages.original_text`: a message is stored with payment data masked (assistant/safety/redact.py); its text as
  typed is kept here only for CXA_PRIVACY__PAYMENT_DATA_RETENTION_DAYS (0 by default: never).

Revises 0002 (approved answers), which was written in parallel.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_LABELS = ("customer_request", "low_confidence", "error", "frustration", "late_delivery", "refund_overdue")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("body", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    with op.batch_alter_table("handoffs") as batch:
        batch.add_column(sa.Column("customer_note", sa.Text(), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("original_text", sa.Text(), nullable=True))
    handoffs = sa.table("handoffs", sa.column("reason", sa.String()), sa.column("customer_note", sa.Text()))
    free_text = sa.and_(handoffs.c.reason.not_in(_LABELS), sa.not_(handoffs.c.reason.like("policy:%")))
    op.execute(
        handoffs.update()
        .where(free_text)
        .values(customer_note=handoffs.c.reason, reason=sa.literal("customer_request"))
    )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("original_text")
    with op.batch_alter_table("handoffs") as batch:
        batch.drop_column("customer_note")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
