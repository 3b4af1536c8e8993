"""Tag filters: ``include``/``exclude`` lists of globs, or regexes with a ``re:`` prefix.

A tag is selected when it matches some include pattern (or the include list is empty)
and no exclude pattern. Globs use ``fnmatch`` case-sensitively; regexes must match the
whole tag.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from reconciler.errors import InvalidInput

REGEX_PREFIX = "re:"


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile one include/exclude pattern; raises ``InvalidInput`` naming it."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidInput(f"invalid tag pattern {pattern!r}: must be a non-empty string")
    if pattern.startswith(REGEX_PREFIX):
        try:
            return re.compile(pattern[len(REGEX_PREFIX):])
        except re.error as exc:
            raise InvalidInput(f"invalid regex {pattern!r}: {exc}") from exc
    if pattern.count("[") != pattern.count("]"):
        raise InvalidInput(f"invalid glob {pattern!r}: unbalanced brackets")
    return re.compile(fnmatch.translate(pattern))


@dataclass(frozen=True)
class TagFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    _inc: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)
    _exc: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_inc", tuple(compile_pattern(p) for p in self.include))
        object.__setattr__(self, "_exc", tuple(compile_pattern(p) for p in self.exclude))

    def matches(self, tag: str) -> bool:
        if self._inc and not any(p.fullmatch(tag) for p in self._inc):
            return False
        return not any(p.fullmatch(tag) for p in self._exc)

    def select(self, tags: list[str]) -> list[str]:
        return [t for t in tags if self.matches(t)]

    @property
    def is_all(self) -> bool:
        return not self.include and not self.exclude
