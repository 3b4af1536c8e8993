"""Diagnostics: one problem in the desired-state file, located by line, column and path.

A diagnostic renders as ``FILE:LINE:COL: PATH: message``; PATH is the dotted location of
the offending value inside the document, e.g. ``repositories.web.copy[1].from``. Lines
and columns are 1-based, as editors show them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

#: a location inside the document: mapping keys (str) and sequence indexes (int)
Path = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(path: Path) -> str:
    """``("repositories", "web", "copy", 1, "from")`` -> ``repositories.web.copy[1].from``.

    Keys that are not plain words (e.g. an id containing a dot) are quoted so that the
    path stays unambiguous: ``repositories["my.repo"].feed``.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out or "(document)"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem; ordering is by position so that printing sorted reads top to bottom."""

    line: int
    column: int
    path: str
    message: str
    file: str = ""

    def render(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.path}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sort_unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by position, exact duplicates dropped (two checks may see the same fault)."""
    return sorted(set(diagnostics))
