"""The ``database`` version store: prompt versions and one head row per prompt.

``prompt_versions`` holds each version's JSON document (the bytes a version
file would hold) under ``PRIMARY KEY(prompt_id, version)``; ``prompt_heads``
holds the latest live version and the next free number of each prompt.

Versions are immutable, and the database itself says so, as it does for the
event log: a row may change only once, from a version to its tombstone
(document NULL, ``deleted_at`` set, number and digest kept); any other UPDATE,
and every DELETE, is refused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER prompt_versions_refuse_update BEFORE UPDATE ON prompt_versions
    WHEN NOT (
        OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL AND NEW.document IS NULL
        AND NEW.prompt_id = OLD.prompt_id AND NEW.version = OLD.version
        AND NEW.content_sha256 = OLD.content_sha256
    )
    BEGIN SELECT RAISE(ABORT, 'prompt versions are immutable: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER prompt_versions_refuse_delete BEFORE DELETE ON prompt_versions
    BEGIN SELECT RAISE(ABORT, 'prompt versions are immutable: DELETE refused'); END
    """,
)

_POSTGRESQL_TRIGGERS = (
    """
    CREATE FUNCTION prompt_versions_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE'
           AND OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL AND NEW.document IS NULL
           AND NEW.prompt_id = OLD.prompt_id AND NEW.version = OLD.version
           AND NEW.content_sha256 = OLD.content_sha256 THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'prompt versions are immutable: % refused', TG_OP;
    END $$
    """,
    """
    CREATE TRIGGER prompt_versions_refuse_change BEFORE UPDATE OR DELETE ON prompt_versions
    FOR EACH ROW EXECUTE FUNCTION prompt_versions_refuse_change()
    """,
    """
    CREATE TRIGGER prompt_versions_refuse_truncate BEFORE TRUNCATE ON prompt_versions
    FOR EACH STATEMENT EXECUTE FUNCTION prompt_versions_refuse_change()
    """,
)


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("prompt_id", sa.String(length=1000), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("version >= 1", name=op.f("ck_prompt_versions_version_positive")),
        sa.CheckConstraint(
            "document IS NOT NULL OR deleted_at IS NOT NULL",
            name=op.f("ck_prompt_versions_document_or_tombstone"),
        ),
        sa.PrimaryKeyConstraint("prompt_id", "version", name=op.f("pk_prompt_versions")),
    )
    op.create_table(
        "prompt_heads",
        sa.Column("prompt_id", sa.String(length=1000), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("next_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prompt_id", name=op.f("pk_prompt_heads")),
    )
    dialect = op.get_bind().dialect.name
    for statement in _POSTGRESQL_TRIGGERS if dialect == "postgresql" else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS prompt_versions_refuse_truncate ON prompt_versions")
        op.execute("DROP TRIGGER IF EXISTS prompt_versions_refuse_change ON prompt_versions")
        op.execute("DROP FUNCTION IF EXISTS prompt_versions_refuse_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS prompt_versions_refuse_update")
        op.execute("DROP TRIGGER IF EXISTS prompt_versions_refuse_delete")
    op.drop_table("prompt_heads")
    op.drop_table("prompt_versions")
