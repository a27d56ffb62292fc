"""The SQL tables, in one metadata that Alembic compares against the database.

Only infrastructure sees these; the domain gets events and value objects.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

# Stable constraint names let batch migrations on SQLite (which rebuild a
# table) and PostgreSQL refer to the same constraint.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# On SQLite an INTEGER PRIMARY KEY is the rowid, so the position costs no
# extra index; elsewhere it is a 64-bit integer.
PositionType = BigInteger().with_variant(Integer(), "sqlite")
PayloadType = JSON().with_variant(JSONB(), "postgresql")

events = Table(
    "events",
    metadata,
    # Positions are assigned by the appender (max + 1 under the write lock),
    # never by a sequence, so they stay gap-free when a transaction rolls back.
    Column("position", PositionType, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("stream_id", String(1000), nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("correlation_id", String(100), nullable=True, index=True),
    Column("causation_id", String(100), nullable=True),
    Column("payload", PayloadType, nullable=False),
    UniqueConstraint("stream_id", "stream_version"),
)

# Language-model answers by request hash. Only successful answers are kept.
llm_cache = Table(
    "llm_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("response", PayloadType, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("hits", Integer, nullable=False, server_default="0"),
)

# The ``database`` version store (storage/database.py). ``document`` is the
# exact JSON a version file would hold, kept as text so that its SHA-256 is the
# file store's; a deleted version keeps its row as a tombstone (document NULL,
# deleted_at set), so its number is never given out again. Migration 0007 makes
# the database refuse any other change to a row.
prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("prompt_id", String(1000), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("document", Text, nullable=True),
    Column("content_sha256", String(64), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("version >= 1", name="version_positive"),
    CheckConstraint("document IS NOT NULL OR deleted_at IS NOT NULL", name="document_or_tombstone"),
)

# One row per prompt, written in the same transaction as its versions: the
# latest live version and the only number the next save may take, each read
# with one primary-key lookup however many versions there are.
prompt_heads = Table(
    "prompt_heads",
    metadata,
    Column("prompt_id", String(1000), primary_key=True),
    Column("latest_version", Integer, nullable=False),
    Column("next_version", Integer, nullable=False),
)
