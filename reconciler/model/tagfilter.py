"""Tag filters: ``include``/``exclude`` lists of globs, or regexes with a ``re:`` prefix.

A tag is selected when it matches some include pattern (or the include list is empty)
and no exclude pattern. Globs use ``fnmatch`` case-sensitively; regexes must match the
whole tag.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass, field

from reconciler.errors import InvalidInput

REGEX_PREFIX = "re:"
_GLOB_SPECIALS = frozenset("*?[")


def is_literal(pattern: str) -> bool:
    """Whether ``pattern`` matches exactly one tag, itself: a glob without ``*``, ``?`` or
    ``[`` (fnmatch has no escape character), not a regex."""
    return not pattern.startswith(REGEX_PREFIX) and _GLOB_SPECIALS.isdisjoint(pattern)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile one include/exclude pattern; raises ``InvalidInput`` naming it."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidInput(f"invalid tag pattern {pattern!r}: must be a non-empty string")
    return _compile(pattern)


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    # cached: a desired state repeats the same patterns across repositories, and each is
    # compiled twice (checked, then built); fnmatch.translate is not cheap (1,000 x 50
    # tag names were 100,000 translations)
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
    # literal patterns (plain tag names, the common case) are a set lookup; the others
    # are matched one by one: 50 tag names were 50 regex matches per tag
    _inc_names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _inc: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)
    _exc_names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _exc: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for which, patterns in (("inc", self.include), ("exc", self.exclude)):
            names: set[str] = set()
            compiled: list[re.Pattern[str]] = []
            for p in patterns:
                if isinstance(p, str) and p and "]" not in p and is_literal(p):
                    names.add(p)  # a plain tag name: nothing to compile, nothing invalid
                else:
                    compiled.append(compile_pattern(p))  # validates (a lone "]" is refused)
            object.__setattr__(self, f"_{which}_names", frozenset(names))
            object.__setattr__(self, f"_{which}", tuple(compiled))

    def matches(self, tag: str) -> bool:
        if self.include and tag not in self._inc_names and not any(p.fullmatch(tag) for p in self._inc):
            return False
        return tag not in self._exc_names and not any(p.fullmatch(tag) for p in self._exc)

    def select(self, tags: list[str]) -> list[str]:
        return [t for t in tags if self.matches(t)]

    @property
    def is_all(self) -> bool:
        return not self.include and not self.exclude


#: the default filter: every tag (TagFilter is immutable, so one shared value is safe)
ALL_TAGS = TagFilter()
