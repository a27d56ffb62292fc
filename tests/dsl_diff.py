"""Where two parsed documents differ: the paths of every value that is not equal."""

from __future__ import annotations

import math
from typing import Any


def differing_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """JSON-pointer-like paths of the leaves (or shapes) that differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}/{key}"
            if key not in old or key not in new:
                found.append(where)
            else:
                found.extend(differing_paths(old[key], new[key], where))
        return found
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [path]
        found = []
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            found.extend(differing_paths(a, b, f"{path}/{index}"))
        return found
    if type(old) is not type(new):
        return [path]
    if isinstance(old, float) and math.isnan(old) and math.isnan(new):
        return []  # YAML's .nan is not equal to itself
    return [] if old == new else [path]
