"""Tag selection (pure): tags read as versions, npm ranges, prereleases, suffix
variants, newest N by version and by name, the plan's words, and refused inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TypedDict

import pytest

from reconciler.errors import InvalidInput
from reconciler.model.tagfilter import TagFilter
from reconciler.model.tagversion import natural_key, tag_version


@pytest.mark.parametrize("tag, suffix, version, prerelease", [
    ("1.2.3", None, "1.2.3", False),
    ("v1.2.3", None, "1.2.3", False),
    ("V2", None, "2.0.0", False),
    ("1.2", None, "1.2.0", False),
    ("1", None, "1.0.0", False),
    ("2.1.0-rc1", None, "2.1.0-rc1", True),
    ("1.0.0-beta.2", None, "1.0.0-beta.2", True),
    ("3.0-alpha-3", None, "3.0.0-alpha-3", True),
    ("1.2.3-alpine", None, None, False),          # a variant, not a version
    ("1.2.3-rc1-alpine", None, None, False),
    ("1.2.3-alpine", "alpine", "1.2.3", False),
    ("1.2.3-rc1-alpine", "alpine", "1.2.3-rc1", True),
    ("1.26.2-alpine3.20", "alpine*", "1.26.2", False),
    ("1.2.3", "alpine", None, False),             # the variant line needs the suffix
    ("1.2.3-slim", "alpine", None, False),
    ("latest", None, None, False),
    ("1.2.3.4", None, None, False),
    ("01.2.3", None, None, False),
    ("v", None, None, False),
], ids=lambda v: str(v))
def test_tags_read_as_versions(tag: str, suffix: str | None, version: str | None, prerelease: bool) -> None:
    got = tag_version(tag, suffix)
    if version is None:
        assert got is None
        return
    assert got is not None and str(got.version) == version and got.prerelease is prerelease


TAGS = ["1.0.0", "1.2.0", "1.2.3", "v1.2.4", "1.3", "1", "1.9.9", "1.10.0", "2.0.0", "2.1.0-rc1", "2.1.0",
        "1.2.3-alpine", "1.3.0-alpine", "latest", "v1.9.9"]


class FilterArgs(TypedDict, total=False):
    """``TagFilter``'s fields, as the tables give them."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]
    semver: str | None
    semver_suffix: str | None
    prereleases: bool
    latest: int | None
    sort: str


@pytest.mark.parametrize("kwargs, selected, outranked", [
    ({"semver": ">=1.2.0 <2.0.0"}, ["1.2.0", "1.2.3", "v1.2.4", "1.3", "1.9.9", "1.10.0", "v1.9.9"], []),
    ({"semver": "^1.2"}, ["1.2.0", "1.2.3", "v1.2.4", "1.3", "1.9.9", "1.10.0", "v1.9.9"], []),
    ({"semver": "~1.2"}, ["1.2.0", "1.2.3", "v1.2.4"], []),
    ({"semver": "1.x", "include": ("v*",)}, ["v1.2.4", "v1.9.9"], []),
    ({"semver": "<1.0.0 || >=2"}, ["2.0.0", "2.1.0"], []),
    ({"semver": ">=2", "prereleases": True}, ["2.0.0", "2.1.0-rc1", "2.1.0"], []),
    ({"semver": "^1", "semver_suffix": "alpine"}, ["1.2.3-alpine", "1.3.0-alpine"], []),
    ({"semver": "^1", "semver_suffix": "-alp*"}, ["1.2.3-alpine", "1.3.0-alpine"], []),
    # newest 2 distinct versions: 1.10.0, then 1.9.9 (two tags name it: both kept)
    ({"semver": "^1", "latest": 2}, ["1.9.9", "1.10.0", "v1.9.9"],
     ["1.0.0", "1.2.0", "1.2.3", "v1.2.4", "1.3", "1"]),
    ({"latest": 1}, ["2.1.0"], ["1.0.0", "1.2.0", "1.2.3", "v1.2.4", "1.3", "1", "1.9.9", "1.10.0", "2.0.0",
                                "v1.9.9"]),
    ({"latest": 1, "prereleases": True}, ["2.1.0"], ["1.0.0", "1.2.0", "1.2.3", "v1.2.4", "1.3", "1", "1.9.9",
                                                      "1.10.0", "2.0.0", "2.1.0-rc1", "v1.9.9"]),
    ({"include": ("1.*",), "exclude": ("*-alpine",), "latest": 2, "sort": "alphanumeric"}, ["1.9.9", "1.10.0"],
     ["1.0.0", "1.2.0", "1.2.3", "1.3"]),
], ids=["range", "caret", "tilde", "x-range-and-include", "alternatives", "prereleases", "suffix", "suffix-glob-with-dash",
        "newest-2-versions", "newest-1", "newest-1-with-prereleases", "alphanumeric"])
def test_selection_steps(kwargs: FilterArgs, selected: list[str], outranked: list[str]) -> None:
    f = TagFilter(**kwargs)
    result = f.selection(TAGS)
    assert list(result.selected) == selected
    assert list(result.outranked) == outranked
    # steps 1 and 2 alone: what "within the filter" means for a mirror
    assert [t for t in TAGS if f.matches(t)] == [t for t in TAGS if t in selected or t in outranked]


def test_the_plan_names_the_steps_that_decided() -> None:
    f = TagFilter(include=("1.*",), semver=" >=1.2.0 <2.0.0 ", latest=5)
    assert f.selection(TAGS).summary == "15 upstream tags, 5 selected: include 1.*, semver >=1.2.0 <2.0.0, newest 5"
    assert TagFilter().selection(TAGS).summary == ""
    assert TagFilter(latest=3, sort="alphanumeric").describe() == ["newest 3 (alphanumeric)"]
    assert TagFilter().is_all and not TagFilter(latest=1).is_all and not TagFilter(semver="*").is_all


def test_date_stamps_by_name() -> None:
    stamps = ["20261130", "20261201", "20251231", "build-9", "build-10"]
    assert sorted(stamps[:3], key=natural_key) == ["20251231", "20261130", "20261201"]
    assert sorted(["build-10", "build-9"], key=natural_key) == ["build-9", "build-10"]
    assert TagFilter(include=("build-*",), latest=1, sort="alphanumeric").select(stamps) == ["build-10"]


@pytest.mark.parametrize("kwargs, message", [
    ({"semver": ">=1.2 <"}, "invalid semver range '>=1.2 <'"),
    ({"semver": "banana"}, "invalid semver range 'banana'"),
    ({"semver": " "}, "must not be empty"),
    ({"latest": 0}, "invalid latest 0"),
    ({"latest": True}, "invalid latest True"),
    ({"sort": "newest"}, "invalid sort 'newest'"),
    ({"include": (">=1.2 <2",)}, "pattern '>=1.2 <2' can never match a tag"),
    ({"exclude": ("^1.2",)}, "pattern '^1.2' can never match a tag"),
], ids=["truncated-range", "not-a-range", "empty-range", "latest-0", "latest-bool", "sort", "range-in-include",
        "caret-in-exclude"])
def test_refused_filters(kwargs: FilterArgs, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        TagFilter(**kwargs)
    assert message in info.value.message and info.value.hint


def test_pattern_lists_are_checked_every_time_and_a_non_string_is_refused_by_name() -> None:
    # the checked lists are cached per list: a refused list is refused again, and a
    # pattern that is not a string (it cannot be a cache key) gets the same refusal
    for _ in range(2):
        with pytest.raises(InvalidInput, match="can never match"):
            TagFilter(include=("v1", ">=1.2"))
    with pytest.raises(InvalidInput, match="invalid tag pattern"):
        TagFilter(include=("v1", ["v2"]))  # type: ignore[arg-type]  # what a broken caller could pass
    assert TagFilter(include=("v1", "v2*")).matches("v20") and not TagFilter(include=("v1", "v2*")).matches("v3")


def test_globs_and_regexes_still_work() -> None:
    f = TagFilter(include=("1.2*", "re:v1\\.9\\.[0-9]+", "[l]atest"))
    assert f.select(TAGS) == ["1.2.0", "1.2.3", "1.2.3-alpine", "latest", "v1.9.9"]
    assert TagFilter(include=("re:a|b",)).matches("a")  # '|' in a regex is fine


def test_node_semver_is_imported_only_where_a_tag_is_read_as_a_version(tmp_path: Path) -> None:
    # ~11 ms of every command's start-up: a repos.yaml without semver filters or newest-N
    # selection never needs it
    code = ("import sys\nfrom reconciler.cli import main\n"
            "try:\n    main(['validate', '-f', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "print('nodesemver' in sys.modules)")
    demo = Path(__file__).resolve().parents[2] / "examples"

    def imported(path: Path) -> str:
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[-1]

    assert imported(demo / "demo.yaml") == "False"
    assert imported(demo / "repos.yaml") == "True"  # declares semver: ">=1.26.0 <2.0.0"
