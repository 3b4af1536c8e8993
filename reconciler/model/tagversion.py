"""Tags read as versions, for the ``semver`` filter and the newest-N selection.

Registries do not hold semver strings; they hold tags such as ``1.2.3``, ``v1.2.3``,
``1.2``, ``1``, ``2.1.0-rc1`` and ``1.2.3-alpine``. A tag is read leniently:

- an optional ``v``, then one to three dot-separated numbers (``1.2`` is ``1.2.0``);
- optionally ``-PRERELEASE``, but only when it looks like one: ``alpha``, ``beta``,
  ``rc``, ``pre``, ``preview`` or ``dev`` (any case), optionally followed by numbers and
  numbers (``rc1``, ``beta.2``, ``alpha-3``; ``rc1-alpine`` is not one);
- with ``suffix`` (repos.yaml ``semver_suffix``, a glob): the tag must end in
  ``-SUFFIX``, which is removed first (``1.2.3-alpine`` with ``alpine`` is 1.2.3;
  ``1.2.3-rc1-alpine`` is the prerelease 1.2.3-rc1). Without it a tag with any other
  suffix (``-alpine``, ``-slim``, ``-bookworm``) is a *variant*, not a version: a
  variant line is chosen on purpose, never by accident.

Anything else (``latest``, ``stable``, ``1.2.3.4``, ``20261201-abc``) is not a version and
never matches a semver filter. Ranges and ordering are npm's, from the ``node-semver``
package (a port of npm's reference implementation): ``>=1.2.0 <2.0.0``, ``^1.2``,
``~1.2``, ``1.x``, ``1.2 - 1.4``, ``A || B``.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass
from typing import Any

from reconciler.errors import InvalidInput

_NUMBERS = re.compile(r"^[vV]?(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?(?:\.(0|[1-9][0-9]*))?(?:-(.+))?$")
_PRERELEASE = re.compile(r"^(?:alpha|beta|rc|pre|preview|dev)[0-9]*(?:[.-][0-9]+)*$", re.IGNORECASE)
#: characters a range may hold that no tag can: a glob with one of them is a range typed
#: into include/exclude by mistake
RANGE_CHARS = frozenset(" <>=~^|,")


@dataclass(frozen=True)
class TagVersion:
    """A tag and the version it names."""

    tag: str
    version: Any  # nodesemver.SemVer (the package ships no type information)

    @property
    def prerelease(self) -> bool:
        return bool(self.version.prerelease)

    def compare(self, other: TagVersion) -> int:
        result: int = self.version.compare(other.version)
        return result


def _nodesemver() -> Any:
    # imported on first use: ~11 ms of start-up (python -X importtime) that every plan,
    # apply and validate paid, also without a semver filter or newest-N selection
    import nodesemver
    return nodesemver


def _read(text: str) -> Any | None:
    m = _NUMBERS.match(text)
    if m is None:
        return None
    major, minor, patch, pre = m.groups()
    if pre is not None and not _PRERELEASE.match(pre):
        return None  # a variant such as -alpine: only semver_suffix makes it a version
    canonical = f"{major}.{minor or 0}.{patch or 0}" + (f"-{pre}" if pre else "")
    nodesemver = _nodesemver()
    try:
        return nodesemver.make_semver(canonical, True)
    except (ValueError, TypeError):
        return None


@functools.lru_cache(maxsize=65536)
def tag_version(tag: str, suffix: str | None = None) -> TagVersion | None:
    """The version ``tag`` names (see the module docstring), or None."""
    if suffix is None:
        version = _read(tag)
        return TagVersion(tag, version) if version is not None else None
    # the suffix is the part after some '-': the rightmost split whose tail matches it
    # and whose head is a version wins (1.2.3-rc1-alpine: head 1.2.3-rc1)
    pattern = _suffix_pattern(suffix)
    at = len(tag)
    while (at := tag.rfind("-", 0, at)) > 0:
        if pattern.fullmatch(tag[at + 1:]):
            version = _read(tag[:at])
            if version is not None:
                return TagVersion(tag, version)
    return None


@functools.lru_cache(maxsize=256)
def _suffix_pattern(suffix: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(suffix))


@functools.lru_cache(maxsize=256)
def compile_range(text: str) -> Any:
    """Parse an npm-style range; ``InvalidInput`` saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"invalid semver range {text!r}: must not be empty",
                           hint="e.g. '>=1.2.0 <2.0.0', '^1.2', '~1.2' or '1.x'")
    nodesemver = _nodesemver()
    try:
        return nodesemver.make_range(text.strip(), False)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"invalid semver range {text!r}: {exc}",
                           hint="npm range syntax: comparators (>=1.2.0 <2.0.0), ^1.2, ~1.2, 1.x, "
                                "1.2 - 1.4, alternatives joined by ||") from exc


def in_range(version: TagVersion, range_text: str, *, prereleases: bool) -> bool:
    """Whether ``version`` satisfies the range. With ``prereleases`` a prerelease is
    compared like any version (npm's includePrerelease); without, it never matches."""
    if version.prerelease and not prereleases:
        return False
    result: bool = compile_range(range_text).test(version.version, include_prerelease=prereleases)
    return result


def natural_key(tag: str) -> tuple[tuple[int, int | str], ...]:
    """Alphanumeric order with digit runs compared as numbers (``build-9`` < ``build-10``;
    date stamps such as ``20261201`` sort as dates)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", tag))
