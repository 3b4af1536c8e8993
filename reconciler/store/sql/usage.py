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

from itertools import repeat

from reconciler.model.gcpause import paused_gc
from reconciler.model.reports import RepositoryUsage, StoreUsage
from reconciler.store.sql.connection import Connection
from reconciler.store.sql.lifecycle import HELD_ROWS, protected_versions

#: ``holder`` value of content several repositories hold (compared by identity)
_SHARED = "\x00shared"


def usage(conn: Connection) -> StoreUsage:
    versions = {r: int(n) for r, n in conn.execute("SELECT repo_id, COUNT(*) FROM versions GROUP BY repo_id")}
    protected = {r: sorted(p) for r, p in protected_versions(conn).items()}
    # blobs and manifests apart: the same digest in both is two stored files
    blobs, manifests = _Kind(conn, "blobs"), _Kind(conn, "manifests")
    newest = {r: p[-1] for r, p in protected.items()}
    # The hot loop: a row per stretch of versions holding a digest (300,000 for 100,000
    # manifests). A repository's rows mostly come one after another (they were written
    # together), so what depends only on the repository is looked up when it changes.
    last_repo: str | None = None
    live_b = live_m = _NO_SET
    top = -1
    with paused_gc():  # only long-lived sets and dicts are built here
        for repo, digest, kind, added, removed in conn.execute(HELD_ROWS):
            if repo != last_repo:
                last_repo = repo
                live_b = blobs.live.setdefault(repo, set())
                live_m = manifests.live.setdefault(repo, set())
                top = newest.get(repo, -1)
            if kind == "blob":
                k, held = blobs, live_b
            else:
                k, held = manifests, live_m
            h = k.holder.setdefault(digest, repo)
            if h != repo:
                k.holder[digest] = _SHARED
            if removed is None:
                held.add(digest)
                # a row reaching the latest falls in a protected version if one is at or after its start
                if added <= top:
                    k.kept.add(digest)
            elif any(added <= n < removed for n in protected.get(repo, ())):
                k.kept.add(digest)
    unique: dict[str, int] = {}
    old_only: dict[str, int] = {}
    latest: dict[str, int] = {}
    for k in (blobs, manifests):
        sizes, kept = k.sizes, k.kept
        for digest, repo in k.holder.items():
            if repo == _SHARED:
                continue
            size = sizes.get(digest, 0)
            unique[repo] = unique.get(repo, 0) + size
            if digest not in kept:
                old_only[repo] = old_only.get(repo, 0) + size
        for repo, digests in k.live.items():
            if digests:
                latest[repo] = latest.get(repo, 0) + sum(map(sizes.get, digests, repeat(0)))
    repos = tuple(RepositoryUsage(id=r, versions=versions.get(r, 0), bytes=latest.get(r, 0),
                                  unique_bytes=unique.get(r, 0), old_versions_bytes=old_only.get(r, 0))
                  for r in sorted(r for (r,) in conn.execute("SELECT id FROM repositories")))
    return StoreUsage(total_bytes=blobs.total() + manifests.total(),
                      unreferenced_bytes=blobs.unreferenced() + manifests.unreferenced(), repositories=repos)


#: the live set of a repository before the first row (never written to)
_NO_SET: set[str] = set()


class _Kind:
    """What ``usage`` learns about one kind of content (blobs, or manifests and indexes)."""

    def __init__(self, conn: Connection, table: str) -> None:
        with paused_gc():
            self.sizes: dict[str, int] = dict(conn.execute(f"SELECT digest, size FROM {table}"))
        #: digest -> the one repository holding it, or _SHARED
        self.holder: dict[str, str] = {}
        #: digests a protected version of their repository holds (read for unshared ones only)
        self.kept: set[str] = set()
        #: repository -> the digests its latest version holds
        self.live: dict[str, set[str]] = {}

    def total(self) -> int:
        return sum(self.sizes.values())

    def unreferenced(self) -> int:
        sizes = self.sizes
        return sum(sizes[d] for d in sizes.keys() - self.holder.keys())
