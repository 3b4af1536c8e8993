"""docs/reliability.md promises each guarantee with the test that backs it: every test it
names must exist, or the page would vouch for a test that was renamed or deleted."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reliability.md"
REF = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")


def named_tests(page: Path) -> list[tuple[str, str]]:
    """Every ``tests/....py`` and ``tests/....py::test_name`` a page names."""
    return sorted(set(REF.findall(page.read_text(encoding="utf-8"))))


def missing_tests(refs: list[tuple[str, str]]) -> list[str]:
    """Those of ``refs`` whose file, or whose test function in it, does not exist."""
    missing = []
    for path, name in refs:
        source = ROOT / path
        if not source.is_file():
            missing.append(path)
        elif name and not re.search(rf"^\s*(?:async\s+)?def {name}\b", source.read_text(encoding="utf-8"), re.M):
            missing.append(f"{path}::{name}")
    return missing


def test_every_test_named_by_the_reliability_page_exists() -> None:
    refs = named_tests(PAGE)
    assert len(refs) >= 40, "docs/reliability.md should name the tests behind its guarantees"
    missing = missing_tests(refs)
    assert missing == [], f"docs/reliability.md names tests that do not exist: {missing}"
