"""Version lifecycle of the SQL stores: which versions must never be dropped, dropping
versions, and what retention needs to know to choose and to estimate.

**Protected versions** are defined once, here (``PROTECTED_VERSIONS``): a repository's
latest version, the version its publication points at (a rollback included), and every
version a publication left less than its grace period ago (``grace.py`` records the
moves). Version dropping refuses them inside its own transaction, the plan and ``repo
prune-versions`` never choose them, ``store du`` counts what they hold as kept, and
``Store.versions_pinned`` (the server's view: all but the latest) is read from here too.
``store gc`` keeps whatever any existing version holds, and protected versions always
exist, so gc respects every kind of protection without a rule of its own. A new kind of
protection is one more ``UNION ALL`` below and reaches all of them.

Dropping uses the range representation of ``repo_content`` / ``repo_tags`` (and the v1
twins): a row is in version N when ``added <= N`` and (``removed`` is NULL or
``removed > N``). Dropping versions deletes their ``versions`` rows, then every row that
no remaining version falls in. Rows that span a kept version stay as they are, so the
kept versions read exactly as before; what only dropped versions held is then
unreferenced, and ``gc`` removes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from reconciler.errors import Conflict, NotFound
from reconciler.model.digest import parse_recorded
from reconciler.model.repository import VersionHistory, version_ranges
from reconciler.store.sql.connection import Connection, chunks

#: (repo_id, number, why) of every version that must never be dropped, with the current
#: time (unix seconds) as its one parameter. The one definition: extend it here (another
#: ``UNION ALL``) and retention, dropping, ``store du`` and ``versions_pinned`` follow.
PROTECTED_VERSIONS = (
    "SELECT id AS repo_id, latest_version AS number, 'latest' AS why FROM repositories "
    "UNION ALL SELECT id, published_version, 'published' FROM repositories WHERE published_version IS NOT NULL "
    "UNION ALL SELECT repo_id, version, 'grace' FROM publication_history WHERE serve_until > ?"
)

#: (repo_id, digest, kind, added, removed): every stretch of versions in which a repository
#: holds a digest: its blobs, manifests and indexes, and the layer blobs of its v1 images
HELD_ROWS = (
    "SELECT repo_id, digest, kind, added, removed FROM repo_content "
    "UNION ALL SELECT r.repo_id, i.layer, 'blob', r.added, r.removed FROM repo_v1_images r "
    "JOIN v1_images i ON i.image_id = r.image_id WHERE r.role = 'image'"
)

#: the tables whose rows carry version ranges (repo_absent: index children left out, sql/absent.py)
_RANGED = ("repo_content", "repo_tags", "repo_v1_images", "repo_v1_tags", "repo_absent")


def protected_versions(conn: Connection, repo_id: str | None = None) -> dict[str, dict[int, tuple[str, ...]]]:
    """repository id -> {version: why} (the reasons, sorted), as of now."""
    sql = f"SELECT repo_id, number, why FROM ({PROTECTED_VERSIONS}) p"
    args: list[object] = [time.time()]
    if repo_id is not None:
        sql += " WHERE repo_id = ?"
        args.append(repo_id)
    out: dict[str, dict[int, tuple[str, ...]]] = {}
    for repo, number, why in conn.execute(sql, args):
        reasons = out.setdefault(repo, {})
        reasons[int(number)] = tuple(sorted({*reasons.get(int(number), ()), str(why)}))
    return out


def require_version(conn: Connection, repo_id: str, version: int) -> None:
    """``NotFound`` unless ``repo_id`` has ``version`` (publish and rollback ask)."""
    if not conn.execute("SELECT 1 FROM versions WHERE repo_id = ? AND number = ?", (repo_id, version)).fetchone():
        raise NotFound(f"repository {repo_id!r} no longer has version {version}: it was dropped "
                       "(retain_versions or `repo prune-versions`)",
                       hint=f"see `reconciler repo history {repo_id}` for the versions it has")


def drop_versions(conn: Connection, repo_id: str, numbers: Iterable[int]) -> list[int]:
    """Inside a write transaction: drop ``numbers`` of ``repo_id`` (see the module doc).
    Refuses, raising before any change, a version that does not exist or is protected."""
    wanted = sorted(set(numbers))
    if not wanted:
        return []
    existing = {int(n) for (n,) in conn.execute("SELECT number FROM versions WHERE repo_id = ?", (repo_id,))}
    absent = [n for n in wanted if n not in existing]
    if absent:
        raise NotFound(f"repository {repo_id!r} has no version {version_ranges(absent)} to drop "
                       "(dropped already, or never made)",
                       hint=f"see `reconciler repo history {repo_id}`; plan again for a fresh list")
    protected = protected_versions(conn, repo_id).get(repo_id, {})
    refused = [f"{n} ({', '.join(protected[n])})" for n in wanted if n in protected]
    if refused:
        raise Conflict(f"refusing to drop version {', '.join(refused)} of repository {repo_id!r}: "
                       "the latest version, the published one and those still served in a publication's "
                       "grace period are never dropped",
                       hint="publish or roll back to another version first, or wait for the grace period "
                            "(RECONCILER_PUBLISH_GRACE) to end")
    for chunk in chunks([str(n) for n in wanted]):
        conn.execute(f"DELETE FROM versions WHERE repo_id = ? AND number IN ({','.join('?' * len(chunk))})",
                     (repo_id, *(int(n) for n in chunk)))
    lo, hi = wanted[0], wanted[-1]
    for table in _RANGED:
        # only rows that fall in a dropped version can lose their last version
        conn.execute(
            f"DELETE FROM {table} WHERE repo_id = ? AND added <= ? AND (removed IS NULL OR removed > ?) "
            f"AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.repo_id = {table}.repo_id "
            f"AND v.number >= {table}.added AND ({table}.removed IS NULL OR v.number < {table}.removed))",
            (repo_id, hi, lo))
    return wanted


def version_history(conn: Connection, repo_ids: Iterable[str]) -> dict[str, VersionHistory]:
    """``Store.version_history`` inside one read snapshot."""
    wanted = sorted(set(repo_ids))
    if not wanted:
        return {}  # no repository keeps only its newest versions: nothing to read (a plan asks every time)
    numbers: dict[str, list[int]] = {}
    rows: dict[str, list[tuple[Any, int, int | None]]] = {}
    for chunk in chunks(wanted):
        marks = ",".join("?" * len(chunk))
        for repo, n in conn.execute(f"SELECT repo_id, number FROM versions WHERE repo_id IN ({marks})", chunk):
            numbers.setdefault(repo, []).append(int(n))
        for repo, digest, _kind, added, removed in conn.execute(
                f"SELECT * FROM ({HELD_ROWS}) h WHERE repo_id IN ({marks})", chunk):
            rows.setdefault(repo, []).append((digest, int(added), None if removed is None else int(removed)))
    digests = sorted({d for repo_rows in rows.values() for d, _, _ in repo_rows})
    sizes: dict[str, int] = {}
    holders: dict[str, set[str]] = {}
    for chunk in chunks(digests):
        marks = ",".join("?" * len(chunk))
        for table in ("blobs", "manifests"):
            sizes.update((d, int(s)) for d, s in conn.execute(
                f"SELECT digest, size FROM {table} WHERE digest IN ({marks})", chunk))
        for repo, digest, *_ in conn.execute(f"SELECT * FROM ({HELD_ROWS}) h WHERE digest IN ({marks})", chunk):
            holders.setdefault(digest, set()).add(repo)
    protected = protected_versions(conn)
    parse = parse_recorded  # the store validated these when it wrote them
    out: dict[str, VersionHistory] = {}
    for repo in wanted:
        if repo not in numbers:
            continue
        repo_rows = rows.get(repo, [])
        out[repo] = VersionHistory(
            repo_id=repo, numbers=tuple(sorted(numbers[repo])), protected=protected.get(repo, {}),
            rows=tuple((parse(d), a, r) for d, a, r in repo_rows),
            sizes={parse(d): sizes[d] for d in {d for d, _, _ in repo_rows} if d in sizes},
            shared=frozenset(parse(d) for d in {d for d, _, _ in repo_rows} if holders.get(d, set()) - {repo}))
    return out

