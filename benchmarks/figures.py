"""One shape for every benchmark's headline figures, and the table they print as.

Each benchmark script puts a ``"figures"`` list of :class:`Figure` (as dicts)
in its ``--json`` output; ``run_all.py`` runs the scripts and prints all their
figures as one table. A figure is a median, the floor or peer it is measured
against in the same run (if there is one), their ratio, and the aim the
figure is held to, with whether it was met. Aims are ratios wherever a floor
exists, so they hold on any machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

COLUMNS = ("figure", "median", "floor or peer", "ratio", "aim", "met")


@dataclass(frozen=True)
class Figure:
    figure: str
    median: float
    unit: str
    baseline: str | None = None  # what the median is compared with: "sqlite3 floor", ...
    baseline_median: float | None = None
    ratio: float | None = None  # median / baseline_median, as the aim reads it
    aim: str = ""
    met: bool | None = None  # None: no aim, or nothing to hold it to

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figure:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def number(value: float, unit: str) -> str:
    text = (
        f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}" if value < 10 else f"{value:.1f}"
    )
    return f"{text} {unit}".strip()


def cells(figure: Figure) -> tuple[str, ...]:
    baseline = ""
    if figure.baseline is not None:
        value = (
            f" {number(figure.baseline_median, figure.unit)}"
            if figure.baseline_median is not None
            else ""
        )
        baseline = f"{figure.baseline}{value}"
    ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else ""
    met = {True: "met", False: "NOT MET", None: ""}[figure.met]
    return (figure.figure, number(figure.median, figure.unit), baseline, ratio, figure.aim, met)


def table(figures: Iterable[Figure]) -> str:
    rows = [COLUMNS, *(cells(f) for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for number_, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if number_ == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)
