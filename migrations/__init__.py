"""Alembic migrations, shipped inside the package so the tool can migrate itself."""
