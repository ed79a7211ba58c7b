"""Approved answers: a person's answer served word for word to customers who ask its question.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approved_answers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("question_key", sa.String(length=500), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("review_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_conversation_id", sa.String(length=64), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approved_answers_question_key", "approved_answers", ["question_key"])
    op.create_index("ix_approved_answers_status", "approved_answers", ["status"])
    op.create_index("ix_approved_answers_updated_at", "approved_answers", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_approved_answers_updated_at", table_name="approved_answers")
    op.drop_index("ix_approved_answers_status", table_name="approved_answers")
    op.drop_index("ix_approved_answers_question_key", table_name="approved_answers")
    op.drop_table("approved_answers")
