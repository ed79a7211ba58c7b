"""${message}

Revision ${up_revision}, after ${down_revision | comma,n}; drafted ${create_date}.
Review the operations below before committing: autogenerate misses renames (it sees a drop and an add)
and server defaults, and a new NOT NULL column on a table with rows needs a default or a backfill.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
% if imports:
${imports}
% endif

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
