"""Collects diagnostics during the semantic checks, locating each by document path."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.desired.diagnostics import Diagnostic, Path, format_path
from reconciler.desired.yamlpos import Positions


@dataclass
class Reporter:
    file: str
    positions: Positions
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def value(self, path: Path, message: str) -> None:
        """A problem with the value at ``path`` (points at the value)."""
        line, col = self.positions.value(path)
        self.diagnostics.append(Diagnostic(line, col, format_path(path), message, self.file))

    def key(self, path: Path, message: str) -> None:
        """A problem with the key naming ``path`` (points at the key)."""
        line, col = self.positions.key(path)
        self.diagnostics.append(Diagnostic(line, col, format_path(path), message, self.file))

    def line_of(self, path: Path) -> int:
        return self.positions.value(path)[0]
