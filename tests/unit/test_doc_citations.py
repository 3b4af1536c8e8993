"""Comments cite the project's own docs, and what they cite exists.

A comment such as ``(docs/original-system.md, "Manifest negotiation")`` is how the code
says which documented behaviour it implements. If the page is renamed or the section
retitled, the comment points at nothing; if it names a document outside this repository
(the design notes the project started from), a reader cannot follow it at all. So:

- every ``docs/<page>.md`` named in the code, the tests, bench/ or scripts/ exists;
- a section named right after it (``docs/x.md, "Title"`` or ``docs/x.md#anchor``) is a
  heading of that page, or a bold run-in label (``**Title.**``);
- nothing cites the shared design documents, which are not part of this repository;
- every test that docs/original-system.md and docs/architecture.md name exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_docs_reliability import missing_tests, named_tests

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: a generated one-line file of several megabytes, with no comments worth reading
SKIP = {ROOT / "reconciler" / "desired" / "_schema_validator.py", Path(__file__).resolve()}

CITATION = re.compile(
    r"docs/(?P<page>[A-Za-z0-9_.-]+\.md)"
    r"(?:#(?P<anchor>[A-Za-z0-9_-]+)"
    # a quoted section title after the page; either may wrap onto the comment's next line
    r"|(?:,?[ \t]+|,|,?[ \t]*\n[ \t]*(?:#[ \t]*)?)(?P<q>[\"'])(?P<section>[^\"'\n]+(?:\n[ \t]*(?:#[ \t]*)?[^\"'\n]+)*)(?P=q))?")
#: the shared design documents the project started from (not in this repository); a bare
#: ``original-system.md`` in code meant the shared one (ours is always ``docs/...``)
SHARED_IN_CODE = re.compile(r"DESIGN\.md|/work/shared/docs|seed-recipes\.txt|(?<!docs/)\boriginal-system\.md")
#: in docs/ and README.md a relative link to original-system.md is ours, but its old
#: numbered sections ("original-system.md 11.4") were the shared document's
SHARED_IN_DOCS = re.compile(r"DESIGN\.md|/work/shared/docs|seed-recipes\.txt|original-system\.md,? (?:section )?\d")


def sources() -> Iterator[Path]:
    for folder, pattern in (("reconciler", "*.py"), ("tests", "*.py"), ("bench", "*.py"), ("scripts", "*")):
        for path in sorted((ROOT / folder).rglob(pattern)):
            if path.is_file() and path.resolve() not in SKIP and "__pycache__" not in path.parts:
                yield path


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def sections(page: Path) -> tuple[set[str], set[str]]:
    """(titles, anchors) of ``page``: its headings, and its bold run-in labels as titles."""
    text = page.read_text(encoding="utf-8")
    headings = [m.strip() for m in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t]*#*$", text, re.M)]
    labels = {m.rstrip(".:") for m in re.findall(r"\*\*([^*\n]+)\*\*", text)}
    return set(headings) | labels, {slug(h) for h in headings}


def title_found(section: str, titles: set[str]) -> bool:
    # "Per-repository access" names the heading "Per-repository access (`--access FILE`)"
    return any(t == section or t.startswith(section + " ") for t in titles)


def citation_problems(path: Path, text: str) -> list[str]:
    rel = path.relative_to(ROOT)
    problems = []
    for m in SHARED_IN_CODE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        problems.append(f"{rel}:{line}: cites {m.group(0)!r}, a document outside this repository "
                        "(cite docs/original-system.md or docs/architecture.md)")
    for m in CITATION.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        page = DOCS / m["page"]
        if not page.is_file():
            problems.append(f"{rel}:{line}: docs/{m['page']} does not exist")
            continue
        titles, anchors = sections(page)
        if m["anchor"] and m["anchor"] not in anchors:
            problems.append(f"{rel}:{line}: docs/{m['page']} has no heading with anchor #{m['anchor']}")
        section = " ".join(re.sub(r"^[ \t]*#?[ \t]*", "", part) for part in (m["section"] or "").split("\n"))
        if section and not title_found(section, titles):
            problems.append(f"{rel}:{line}: docs/{m['page']} has no section {section!r}")
    return problems


def test_comments_cite_docs_that_exist() -> None:
    problems: list[str] = []
    cited = 0
    for path in sources():
        text = path.read_text(encoding="utf-8", errors="replace")
        cited += len(CITATION.findall(text))
        problems += citation_problems(path, text)
    assert cited >= 40, "the code should cite its docs; did the citation pattern break?"
    assert problems == []


def test_docs_do_not_cite_the_shared_design_documents() -> None:
    problems = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for m in SHARED_IN_DOCS.finditer(text):
            problems.append(f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}")
    assert problems == []


@pytest.mark.parametrize("page", ["original-system.md", "architecture.md"])
def test_every_test_the_page_names_exists(page: str) -> None:
    refs = named_tests(DOCS / page)
    assert refs, f"docs/{page} should name the tests behind its claims"
    missing = missing_tests(refs)
    assert missing == [], f"docs/{page} names tests that do not exist: {missing}"


@pytest.mark.parametrize("text,problem", [
    ('"""See docs/nowhere.md."""', "docs/nowhere.md does not exist"),
    ('# docs/server.md, "No such section"', "has no section 'No such section'"),
    ('"""docs/server.md, "No such\n    section"."""', "has no section 'No such section'"),
    ("# docs/server.md#no-such-anchor", "has no heading with anchor #no-such-anchor"),
    ("# as DESIGN" + ".md section 3 says", "a document outside this repository"),
    ('"""(original-system' + '.md 11.4)"""', "a document outside this repository"),
    ("# see /work/" + "shared/docs/x", "a document outside this repository"),
    ("# the recipes of seed-" + "recipes.txt", "a document outside this repository"),
])
def test_the_checker_catches_a_broken_citation(text: str, problem: str) -> None:
    problems = citation_problems(ROOT / "reconciler" / "example.py", text)
    assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize("text", [
    '"""docs/server.md, "Per-repository access"."""',
    "# docs/deployment.md#postgresql-store",
    '# what the cache holds (docs/deployment.md "Connections")',
    '"""(docs/original-system.md,\n    "Manifest negotiation")"""',
    '"""(docs/original-system.md, "Manifest\n    negotiation")"""',
    '# (docs/original-system.md, "Manifest\n# negotiation")',
    "# docs/plan-json.md and bumped on any incompatible change",
    "# docs/deployment.md's reference setup ('haproxy' below)",
])
def test_the_checker_accepts_good_citations(text: str) -> None:
    assert citation_problems(ROOT / "reconciler" / "example.py", text) == []
