"""``store du`` for the SQL stores: where the bytes are, in one pass over the rows.

Sizes are the recorded sizes of blobs and manifests (what the bytes in the blob storage
add up to; a file no row names, left by a killed writer, is not counted: ``store gc``
removes it). A digest counts once per repository however many of its versions hold it.

One read snapshot, three scans (sizes, versions, the held rows) and a walk in Python:
a store of 1,000 repositories and 100,000 manifests answers in about a second
(``bench/du.py``). The per-row work is a few dictionary operations; the protected
versions of a repository (``lifecycle.PROTECTED_VERSIONS``) are a handful of numbers.
"""

from __future__ import annotations

from reconciler.store.protocol import RepositoryUsage, StoreUsage
from reconciler.store.sql.connection import Connection
from reconciler.store.sql.lifecycle import HELD_ROWS, protected_versions

#: ``holder`` value of content several repositories hold
_SHARED = ""


def usage(conn: Connection) -> StoreUsage:
    # blobs and manifests are keyed apart: the same digest in both is two stored files
    sizes: dict[tuple[bool, str], int] = {(True, d): int(s) for d, s in conn.execute("SELECT digest, size FROM blobs")}
    sizes.update(((False, d), int(s)) for d, s in conn.execute("SELECT digest, size FROM manifests"))
    versions = {r: int(n) for r, n in conn.execute("SELECT repo_id, COUNT(*) FROM versions GROUP BY repo_id")}
    protected = {r: tuple(p) for r, p in protected_versions(conn).items()}
    holder: dict[tuple[bool, str], str] = {}
    live: dict[str, set[tuple[bool, str]]] = {r: set() for r in versions}
    kept: set[tuple[str, tuple[bool, str]]] = set()  # (repository, content) a protected version holds
    for repo, digest, kind, added, removed in conn.execute(HELD_ROWS):
        key = (kind == "blob", digest)
        h = holder.get(key)
        if h is None:
            holder[key] = repo
        elif h != repo:
            holder[key] = _SHARED
        if removed is None:
            live.setdefault(repo, set()).add(key)
        if any(added <= n and (removed is None or n < removed) for n in protected.get(repo, ())):
            kept.add((repo, key))
    unique: dict[str, int] = {}
    old_only: dict[str, int] = {}
    for key, repo in holder.items():
        if repo == _SHARED:
            continue
        size = sizes.get(key, 0)
        unique[repo] = unique.get(repo, 0) + size
        if (repo, key) not in kept:
            old_only[repo] = old_only.get(repo, 0) + size
    repos = tuple(
        RepositoryUsage(id=r, versions=versions.get(r, 0), bytes=sum(sizes.get(k, 0) for k in live.get(r, ())),
                        unique_bytes=unique.get(r, 0), old_versions_bytes=old_only.get(r, 0))
        for r in sorted(r for (r,) in conn.execute("SELECT id FROM repositories")))
    unreferenced = sum(s for key, s in sizes.items() if key not in holder)
    return StoreUsage(total_bytes=sum(sizes.values()), unreferenced_bytes=unreferenced, repositories=repos)
