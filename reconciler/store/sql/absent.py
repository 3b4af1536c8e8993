"""Index children a repository version deliberately does not hold (a platform subset).

A repository that mirrors ``platforms: [linux/amd64]`` of a multi-platform index keeps
the index byte for byte but not its other platforms' manifests. The store's invariant
("every index's children are in the version") then holds with one exception, recorded
per version in the table ``repo_absent`` (migration 0008), in the same range
representation as ``repo_content`` (``added <= n < removed``): a child listed there for
version n may be missing from it. Nothing else may: ``store check`` and every commit still refuse any
other missing child, and an absent child is never a reason to accept a missing blob.

The set is normalised on every commit: only children of indexes the version holds,
and only those it does not hold (a platform added later brings the manifest and drops
the row), so it never grows past what the version's indexes list.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model import Digest
from reconciler.model.content import ContentSet
from reconciler.store.sql.connection import Connection, chunks


def normalize(conn: Connection, content: ContentSet, absent: Iterable[Digest]) -> frozenset[Digest]:
    """``absent`` reduced to children of ``content``'s indexes that ``content`` lacks."""
    candidates = [str(d) for d in set(absent) if d not in content]
    kept: set[Digest] = set()
    for chunk in chunks(candidates):
        marks = ",".join("?" * len(chunk))
        for parent, child in conn.execute(
                f"SELECT parent, child FROM manifest_refs WHERE child IN ({marks}) AND child_kind = 'manifest'", chunk):
            if Digest.parse(parent) in content.indexes:
                kept.add(Digest.parse(child))
    return frozenset(kept)


def live(conn: Connection, repo_id: str, number: int | None = None) -> frozenset[Digest]:
    """The absent children of the latest version (``number`` None) or of version ``number``."""
    if number is None:
        rows = conn.execute("SELECT digest FROM repo_absent WHERE repo_id = ? AND removed IS NULL", (repo_id,))
    else:
        rows = conn.execute("SELECT digest FROM repo_absent WHERE repo_id = ? AND added <= ? "
                            "AND (removed IS NULL OR removed > ?)", (repo_id, number, number))
    return frozenset(Digest.parse(r[0]) for r in rows)


def live_all(conn: Connection) -> dict[str, frozenset[Digest]]:
    """Every repository's latest absent children (one scan)."""
    out: dict[str, set[Digest]] = {}
    for repo_id, digest in conn.execute("SELECT repo_id, digest FROM repo_absent WHERE removed IS NULL"):
        out.setdefault(repo_id, set()).add(Digest.parse(digest))
    return {r: frozenset(s) for r, s in out.items()}


def ranges(conn: Connection, repo_id: str) -> list[tuple[str, int, int | None]]:
    """(digest, added, removed) of every row of ``repo_id`` (for ``store check``)."""
    return [(r[0], int(r[1]), r[2]) for r in conn.execute(
        "SELECT digest, added, removed FROM repo_absent WHERE repo_id = ?", (repo_id,))]


def record(conn: Connection, repo_id: str, version: int, old: frozenset[Digest], new: frozenset[Digest]) -> None:
    """Make ``new`` the absent set from ``version`` on (``old`` was the previous one)."""
    for d in sorted(old - new, key=str):
        conn.execute("UPDATE repo_absent SET removed = ? WHERE repo_id = ? AND digest = ? AND removed IS NULL",
                     (version, repo_id, str(d)))
    conn.executemany("INSERT INTO repo_absent (repo_id, digest, added) VALUES (?, ?, ?)",
                     [(repo_id, str(d), version) for d in sorted(new - old, key=str)])
