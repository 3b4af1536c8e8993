"""Tag filters: plain tag names are matched by a set lookup, everything else by its
compiled glob or regex; both must select exactly what ``fnmatch`` / ``re`` select."""

from __future__ import annotations

import fnmatch
import re

import pytest

from reconciler.errors import InvalidInput
from reconciler.model.tagfilter import TagFilter

TAGS = ["latest", "v1", "v1.0", "v1x0", "V1", "v10", "a.b", "aXb", "a\\b", "x]", "1.10", "", "latest\n"]


def _reference(include: tuple[str, ...], exclude: tuple[str, ...], tag: str) -> bool:
    def hit(p: str) -> bool:
        return bool(re.fullmatch(p[3:], tag)) if p.startswith("re:") else fnmatch.fnmatchcase(tag, p)
    return (not include or any(hit(p) for p in include)) and not any(hit(p) for p in exclude)


@pytest.mark.parametrize("include, exclude", [
    (("latest", "v1"), ()),
    (("v1", "v1*"), ("v1.0",)),
    (("a.b", "a\\b", "1.10"), ()),          # regex and escape characters are literal in a glob
    (("re:v1", "latest"), ("V1",)),          # a regex must match the whole tag
    (("re:v1.0",), ("v1x0",)),
    ((), ("latest", "re:v1.*")),
    (("v[0-9]",), ("v1",)),
], ids=["names", "name-and-glob", "dots-backslashes", "regex-and-name", "regex-dot", "exclude-only", "class"])
def test_filter_selects_what_fnmatch_and_re_select(include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
    f = TagFilter(include, exclude)
    assert [t for t in TAGS if f.matches(t)] == [t for t in TAGS if _reference(include, exclude, t)]


@pytest.mark.parametrize("pattern", ["", "x]", "v[1", "re:("], ids=["empty", "close-only", "open-only", "bad-regex"])
def test_invalid_pattern_is_refused_even_when_it_looks_like_a_plain_name(pattern: str) -> None:
    with pytest.raises(InvalidInput, match="invalid"):
        TagFilter((pattern,))
