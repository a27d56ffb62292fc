"""``autoopt report``: answers for admins and auditors, from the read models."""

from __future__ import annotations

import click


@click.group("report")
def report_group() -> None:
    """Reports over every recorded run, read from the SQL read models.

    \b
    Examples:
      autoopt report strategies
      autoopt report costs --by day --format csv
      autoopt report html 5805acc6 --out report.html
    """
