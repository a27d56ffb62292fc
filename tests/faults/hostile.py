"""Helpers of the security faults: hostile names, hostile apps, and a file-tree guard.

``TreeGuard`` lists every file and folder under a root before a command and
after it, and says which new ones lie outside the places the command may write;
it also looks for a unique token (carried by every hostile name) in the places
an escape would land: the parents of the root, /tmp, the repository and the
working folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import REPO_ROOT

TOKEN = "zz-escape-7f3a"


def hostile_names(root: Path) -> list[str]:
    """Node ids, app names and prompt ids that try to leave the storage folder."""
    return [
        "..",
        ".",
        "/",
        "\\",
        f"../../{TOKEN}-up",
        f"../../../../../../../../tmp/{TOKEN}-deep",
        f"{root}/{TOKEN}-absolute",
        f"/tmp/{TOKEN}-tmp",
        f"..\\..\\{TOKEN}-windows",
        f"C:\\{TOKEN}-drive",
        f"nul\0byte/../{TOKEN}-nul",
        f"{TOKEN}-long-" + "x" * 5000,
        "index.json",
        "prompt.json",
        ".lock",
        ".index.lock",
        "1.json",
        "1.deleted",
        f".{TOKEN}.json.123.deadbeef.tmp",
        f"{TOKEN}.tmp",
        f"\u202e{TOKEN}-rtl..",
        f"\uff0e\uff0e\uff0f\uff0e\uff0e\uff0f{TOKEN}-fullwidth",
        f"..\u2215..\u2215{TOKEN}-division-slash",
        f"~/{TOKEN}-home",
        f"$HOME/{TOKEN}-var",
        "CON",
        "-rf",
        f"line\nbreak/../{TOKEN}-newline",
    ]


# Weak on purpose (vague words, one long line), so the rule strategies rewrite it.
WEAK = (
    "Please note that you are basically a helper. Maybe answer in a kind of friendly way. "
    "Actually, you should really try to be sort of helpful. Keep it short. Prompt {n}."
)


def listing(root: Path) -> set[Path]:
    found = {root}
    for folder, dirs, files in os.walk(root):
        found.update(Path(folder) / name for name in [*dirs, *files])
    return found


class TreeGuard:
    """What a command created under ``root``, and whether any of it is out of bounds."""

    def __init__(self, root: Path, allowed: Iterable[Path]) -> None:
        self.root = root
        self.allowed = [Path(p) for p in allowed]
        self.before = listing(root)

    def strays(self) -> list[str]:
        new = listing(self.root) - self.before
        outside = [
            str(p) for p in sorted(new) if not any(p == a or a in p.parents for a in self.allowed)
        ]
        return outside + escaped_anywhere(self.root)


def escaped_anywhere(root: Path) -> list[str]:
    """Files or folders named with the hostile token where an escape would put them."""
    places = {*list(root.parents)[:3], Path("/tmp"), REPO_ROOT, Path.cwd(), Path("/")}
    found = []
    for place in places:
        try:
            names = os.listdir(place)
        except OSError:
            continue
        found.extend(str(place / n) for n in names if TOKEN in n)
    return found
