"""Tag filters: which upstream tags a sync selects, in one documented order.

1. ``include``/``exclude``: a tag must match some include pattern (or the include list
   is empty) and no exclude pattern. Globs use ``fnmatch`` case-sensitively; regexes
   (``re:`` prefix) must match the whole tag.
2. ``semver``: an npm-style range; the tag must be a version in it
   (``reconciler.model.tagversion``: lenient reading, ``semver_suffix``, prereleases
   only with ``prereleases``).
3. ``latest: N``: of what is left, the N highest versions (``sort: semver``: tags that
   are versions, prereleases as in 2) or the N last names in alphanumeric order
   (``sort: alphanumeric``, for date stamps).

Steps 1 and 2 judge each tag alone (``matches``: what "within the filter" means for a
mirror); step 3 needs the whole list (``select``/``selection``), so a tag that drops out
of the newest N still matches the filter, and a mirror removes it like a tag gone upstream.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.errors import InvalidInput
from reconciler.model.tagversion import RANGE_CHARS, TagVersion, compile_range, in_range, natural_key, tag_version

REGEX_PREFIX = "re:"
_GLOB_SPECIALS = frozenset("*?[")
SORTS = ("semver", "alphanumeric")


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
    _refuse_range(pattern)
    return re.compile(fnmatch.translate(pattern))


def _refuse_range(pattern: str) -> None:
    """A glob holding a character no tag can hold matches nothing, silently: most likely
    a version range typed into include/exclude (``">=1.2 <2"``)."""
    if not pattern.startswith(REGEX_PREFIX) and not RANGE_CHARS.isdisjoint(pattern.replace("[^", "[")):
        raise InvalidInput(f"pattern {pattern!r} can never match a tag (tags hold only letters, digits, '_', '.' "
                           "and '-')", hint=f"for a version range use semver: {pattern!r}")


@functools.lru_cache(maxsize=1024)
def _split(patterns: tuple[str, ...]) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """The plain tag names among ``patterns`` (a set lookup) and the others compiled;
    raises ``InvalidInput`` naming a bad one. Cached: a desired state gives many
    repositories the same list (``defaults``, generated files), and 10,000 repositories
    x 10 names were 100,000 checks."""
    names: set[str] = set()
    compiled: list[re.Pattern[str]] = []
    for p in patterns:
        if isinstance(p, str) and p and "]" not in p and is_literal(p):
            _refuse_range(p)
            names.add(p)  # a plain tag name: nothing to compile
        else:
            compiled.append(compile_pattern(p))  # validates (a lone "]" is refused)
    return frozenset(names), tuple(compiled)


def valid_patterns(patterns: list[str] | tuple[str, ...]) -> bool:
    """Whether every pattern of an include or exclude list is valid (cached per list, as
    ``TagFilter`` builds it); False: check each with ``compile_pattern`` to say which."""
    try:
        _split(tuple(patterns))
    except (InvalidInput, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Selection:
    """What a filter made of one tag list: the selected tags, the tags that passed the
    per-tag steps but not the newest N (``outranked``), and the words for the plan."""

    selected: tuple[str, ...]
    outranked: tuple[str, ...] = ()
    listed: int = 0
    #: e.g. "12 upstream tags, 5 selected: semver >=1.2.0 <2.0.0, newest 5"; "" without filter
    summary: str = ""


@dataclass(frozen=True)
class TagFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: an npm-style range (step 2)
    semver: str | None = None
    #: a glob the variant suffix of version tags must match (``alpine``: ``1.2.3-alpine``)
    semver_suffix: str | None = None
    #: prerelease versions (``2.1.0-rc1``) may be selected
    prereleases: bool = False
    #: keep the N highest (step 3)
    latest: int | None = None
    sort: str = "semver"
    # literal patterns (plain tag names, the common case) are a set lookup; the others
    # are matched one by one: 50 tag names were 50 regex matches per tag
    _inc_names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _inc: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)
    _exc_names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _exc: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for which, patterns in (("inc", self.include), ("exc", self.exclude)):
            try:
                names, compiled = _split(patterns)
            except TypeError:  # a pattern that cannot be a key (not a string): refused below
                names, compiled = _split.__wrapped__(patterns)
            object.__setattr__(self, f"_{which}_names", names)
            object.__setattr__(self, f"_{which}", compiled)
        if self.semver is not None:
            compile_range(self.semver)  # raises InvalidInput naming the range
        if self.semver_suffix is not None and self.semver_suffix.startswith("-"):
            object.__setattr__(self, "semver_suffix", self.semver_suffix.lstrip("-") or None)  # "-alpine" is "alpine"
        if self.latest is not None and (isinstance(self.latest, bool) or not isinstance(self.latest, int)
                                        or self.latest < 1):
            raise InvalidInput(f"invalid latest {self.latest!r}: must be a whole number of at least 1",
                               hint="latest: N keeps the N newest tags; leave it out to keep every tag")
        if self.sort not in SORTS:
            raise InvalidInput(f"invalid sort {self.sort!r}: expected one of {', '.join(SORTS)}",
                               hint="semver ranks versions (1.10.0 after 1.9.9); alphanumeric ranks names "
                                    "(date stamps such as 20261201)")

    @property
    def _versions(self) -> bool:
        """Tags must be versions: a semver range, or the newest N by version."""
        return self.semver is not None or (self.latest is not None and self.sort == "semver")

    def _named(self, tag: str) -> bool:
        if self.include and tag not in self._inc_names and not any(p.fullmatch(tag) for p in self._inc):
            return False
        return tag not in self._exc_names and not any(p.fullmatch(tag) for p in self._exc)

    def matches(self, tag: str) -> bool:
        """Steps 1 and 2: whether ``tag`` is within the filter (the newest N aside)."""
        if not self._named(tag):
            return False
        if not self._versions:
            return True
        version = tag_version(tag, self.semver_suffix)
        if version is None or (version.prerelease and not self.prereleases):
            return False
        return self.semver is None or in_range(version, self.semver, prereleases=self.prereleases)

    def matching(self, tags: Iterable[str]) -> set[str]:
        """The tags of ``tags`` that ``matches``. A filter of plain names only (the common
        case) is set operations, not a call per tag: a big plan asks this of every
        repository's stored tags."""
        if self._inc or self._exc or self._versions:
            return {t for t in tags if self.matches(t)}
        picked = set(self._inc_names.intersection(tags)) if self.include else set(tags)
        picked -= self._exc_names
        return picked

    def select(self, tags: list[str]) -> list[str]:
        return list(self.selection(tags).selected)

    def selection(self, tags: list[str]) -> Selection:
        """All three steps over one tag list (duplicates counted once)."""
        listed = list(dict.fromkeys(tags))
        passed = [t for t in listed if self.matches(t)]
        outranked: list[str] = []
        if self.latest is not None and len(passed) > self.latest:
            kept = set(self._newest(passed, self.latest))
            outranked = [t for t in passed if t not in kept]
            passed = [t for t in passed if t in kept]
        return Selection(tuple(passed), tuple(outranked), len(listed), self._summary(len(listed), len(passed)))

    def _newest(self, tags: list[str], n: int) -> list[str]:
        """The tags of the ``n`` highest versions (tags naming one version, such as
        ``1.2.0`` and ``v1.2.0``, count as one), or the ``n`` last names."""
        if self.sort == "alphanumeric":
            return sorted(tags, key=natural_key)[-n:]
        versions = [v for t in tags if (v := tag_version(t, self.semver_suffix)) is not None]
        ordered = sorted(versions, key=functools.cmp_to_key(TagVersion.compare), reverse=True)
        kept: list[str] = []
        distinct = 0
        for i, v in enumerate(ordered):
            if i == 0 or v.compare(ordered[i - 1]) != 0:
                distinct += 1
                if distinct > n:
                    break
            kept.append(v.tag)
        return kept

    def describe(self) -> list[str]:
        """The configured steps, in order, as the plan names them."""
        parts: list[str] = []
        if self.include:
            parts.append("include " + " ".join(self.include))
        if self.exclude:
            parts.append("exclude " + " ".join(self.exclude))
        if self.semver is not None:
            parts.append(f"semver {self.semver.strip()}")
        if self._versions and self.semver_suffix:
            parts.append(f"suffix -{self.semver_suffix}")
        if self._versions and self.prereleases:
            parts.append("prereleases")
        if self.latest is not None:
            parts.append(f"newest {self.latest}" + (" (alphanumeric)" if self.sort == "alphanumeric" else ""))
        return parts

    def _summary(self, listed: int, selected: int) -> str:
        parts = self.describe()
        if not parts:
            return ""
        return f"{listed} upstream tag{'' if listed == 1 else 's'}, {selected} selected: {', '.join(parts)}"

    @property
    def is_all(self) -> bool:
        return not self.include and not self.exclude and self.semver is None and self.latest is None


#: the default filter: every tag (TagFilter is immutable, so one shared value is safe)
ALL_TAGS = TagFilter()
