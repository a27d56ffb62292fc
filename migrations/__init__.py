"""Alembic migrations, shipped inside the package so the tool can migrate itself."""

#: The newest revision in ``versions/``. Opening an up-to-date database compares
#: its revision with this and never imports Alembic (a tenth of a second of every
#: command's start-up); a test holds it equal to the head Alembic computes.
HEAD_REVISION = "0007"
