"""docs/reliability.md promises each guarantee with the test that backs it: every test it
names must exist, or the page would vouch for a test that was renamed or deleted."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reliability.md"
REF = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")


def test_every_test_named_by_the_reliability_page_exists() -> None:
    refs = sorted(set(REF.findall(PAGE.read_text(encoding="utf-8"))))
    assert len(refs) >= 40, "docs/reliability.md should name the tests behind its guarantees"
    missing = []
    for path, name in refs:
        source = ROOT / path
        if not source.is_file():
            missing.append(path)
        elif name and not re.search(rf"^\s*(?:async\s+)?def {name}\b", source.read_text(encoding="utf-8"), re.M):
            missing.append(f"{path}::{name}")
    assert missing == [], f"docs/reliability.md names tests that do not exist: {missing}"
