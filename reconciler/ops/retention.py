"""Retention: which old versions of a repository to drop, and what that gives back.

One rule serves ``retain_versions`` in repos.yaml (the plan, then apply) and
``reconciler repo prune-versions`` (one-off): keep the newest ``keep`` versions, counting
the versions this change is about to make, and never a protected one. Which versions are
protected, and why, comes from the store (``Store.protected_versions``: the latest, the
published one, those a publication left less than its grace period ago); a plan may
*release* a reason it ends itself (its new version replaces the latest; its unpublish, or
with no grace period its publish, moves the publication off a version), and apply drops
such a version only after that happened.

``choose`` and ``freed_bytes`` are pure (tables in tests/unit/test_retention.py);
``prune_versions`` is the one-off command over a store.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from reconciler.errors import InvalidInput
from reconciler.model import Digest
from reconciler.model.repository import VersionHistory
from reconciler.store.protocol import Store

#: reasons a version is protected (``lifecycle.PROTECTED_VERSIONS`` in the SQL stores)
LATEST, PUBLISHED, GRACE = "latest", "published", "grace"


def check_keep(keep: int) -> int:
    if keep < 1:
        raise InvalidInput(f"keep {keep} versions: at least 1 is needed (the latest version is always kept)",
                           hint="give --keep 1 or more")
    return keep


def still_protected(history: VersionHistory, released: Collection[str] = ()) -> dict[int, tuple[str, ...]]:
    """The protected versions, and why, once the ``released`` reasons no longer hold."""
    out: dict[int, tuple[str, ...]] = {}
    for n, why in history.protected.items():
        left = tuple(w for w in why if w not in released)
        if left:
            out[n] = left
    return out


def choose(history: VersionHistory, keep: int, *, new_versions: int = 0,
           released: Collection[str] = ()) -> tuple[int, ...]:
    """The versions to drop so the newest ``keep`` remain, ``new_versions`` about to be
    made counted among them; never one still protected (see ``still_protected``)."""
    check_keep(keep)
    room = keep - new_versions
    newest = set(history.numbers[-room:]) if room > 0 else set()
    guarded = still_protected(history, released)
    return tuple(n for n in history.numbers if n not in newest and n not in guarded)


def freed_bytes(history: VersionHistory, dropped: Iterable[int], *, new_version: bool = False,
                removing: Collection[Digest] = (), adding: Collection[Digest] = ()) -> int:
    """Bytes that no version holds any more once ``dropped`` are gone (what gc then frees).

    ``new_version``: the change also makes a new version, which carries over what the
    latest holds except ``removing`` and holds ``adding`` too. Content another repository
    holds is never counted. An estimate in one respect: blob and manifest bytes only (a v1
    image's json is a few KiB)."""
    gone = set(dropped)
    remaining = [n for n in history.numbers if n not in gone]
    kept: set[Digest] = set(history.shared) | set(adding)
    candidates: set[Digest] = set()
    for digest, added, removed in history.rows:
        if removed is None and new_version and digest not in removing:
            kept.add(digest)
        elif any(added <= n and (removed is None or n < removed) for n in remaining):
            kept.add(digest)
        else:
            candidates.add(digest)
    return sum(history.sizes.get(d, 0) for d in candidates - kept)


@dataclass(frozen=True)
class PruneResult:
    repo_id: str
    dropped: tuple[int, ...]
    kept: tuple[int, ...]
    #: kept although older than the newest ``keep``: version -> why
    protected: dict[int, tuple[str, ...]]
    frees_bytes: int
    dry_run: bool = False

    def to_json(self) -> dict[str, object]:
        return {"repository": self.repo_id, "dropped": list(self.dropped), "kept": list(self.kept),
                "protected": {str(n): list(why) for n, why in sorted(self.protected.items())},
                "frees_bytes": self.frees_bytes, "dry_run": self.dry_run}


def prune_versions(store: Store, repo_id: str, keep: int, *, dry_run: bool = False) -> PruneResult:
    """``reconciler repo prune-versions``: drop all but the newest ``keep`` versions of
    ``repo_id`` and the protected ones, in one transaction. The caller holds the store lock."""
    check_keep(keep)
    store.repository_get(repo_id)  # a clear error for an unknown repository
    history = store.version_history([repo_id])[repo_id]
    drop = choose(history, keep)
    frees = freed_bytes(history, drop)
    if drop and not dry_run:
        store.versions_drop(repo_id, drop)
    newest = set(history.numbers[-keep:])
    kept = tuple(n for n in history.numbers if n not in drop)
    return PruneResult(repo_id, drop, kept, {n: w for n, w in history.protected.items() if n not in newest},
                       frees, dry_run)
