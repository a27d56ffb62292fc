"""Read models gain what an audit shows: each prompt's baseline and triage
(PromptAnalyzed), and each run's optimization settings (RunStarted's config).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("baseline_overall", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("baseline_clarity", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("baseline_efficiency", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("issues", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("triage", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("triage_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("strategies", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("score_threshold", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("min_confidence", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("max_iterations", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("language_model", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        for name in (
            "language_model",
            "max_iterations",
            "min_confidence",
            "score_threshold",
            "strategies",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        for name in (
            "triage_reason",
            "triage",
            "issues",
            "baseline_efficiency",
            "baseline_clarity",
            "baseline_overall",
        ):
            batch_op.drop_column(name)
