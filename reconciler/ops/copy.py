"""``copy``: bring tags, manifests or indexes from repository A into B
(docs/original-system.md, "Copy").

- a tag brings the tag, its manifest or index, the index's manifests and all their blobs;
- a manifest brings its blobs and no tags;
- an index brings its manifests (nested indexes too) and their blobs, and no tags.

References are resolved in the *source* repository's content, and a missing one is an
error naming every missing digest (the original looked them up globally and silently
copied incomplete images).

The pure functions; the command plans and applies the repos.yaml ``copy:`` entry
(``apply.content_commands.copy_command``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from reconciler.errors import ContentNotFound, InvalidInput
from reconciler.model import Digest
from reconciler.model.content import Origin, TagEntry
from reconciler.ops.cascade import RefGraph, missing_references
from reconciler.ops.result import resolve_digests
from reconciler.ops.state import RepoState

CopyKind = Literal["tag", "manifest", "index"]
KINDS: tuple[CopyKind, ...] = ("tag", "manifest", "index")


def copy_state(source: RepoState, target: RepoState, source_graph: RefGraph, kind: CopyKind,
               names: Sequence[str] | Literal["all"], origin: Origin = Origin.COPY, *,
               source_id: str = "the source repository") -> RepoState:
    """``target`` plus the named content of ``source`` and everything it needs."""
    roots, tags = _roots(source, kind, names, source_id)
    check_references(source, source_graph, roots, kind, source_id=source_id)
    # platforms the source does not mirror are not copied (and the target records them absent)
    closure = source_graph.closure(roots, source.absent)
    new = target.with_content(closure, source_graph.left_out(closure, source.absent))
    if tags:
        new = new.with_tags({n: TagEntry(source.tags[n].digest, origin) for n in tags})
    return new


def check_references(source: RepoState, source_graph: RefGraph, roots: Sequence[Digest], kind: str, *,
                     source_id: str = "the source repository") -> None:
    """Raise ``ContentNotFound`` naming everything ``roots`` need that ``source`` lacks
    (the plan runs this same check on each repository's predicted state)."""
    missing = missing_references(source, source_graph, roots)
    if len(missing):
        listed = ", ".join(f"{k.value} {d}" for d, k in sorted(missing.items(), key=lambda x: str(x[0])))
        raise ContentNotFound(
            f"cannot copy from {source_id}: it lacks content the copied {kind}s reference: {listed}",
            hint=f"sync or upload the missing content into {source_id} first (`reconciler store check` "
                 "reports incomplete repositories)")


def _roots(source: RepoState, kind: CopyKind, names: Sequence[str] | Literal["all"],
           source_id: str) -> tuple[list[Digest], list[str]]:
    if kind not in KINDS:
        raise InvalidInput(f"cannot copy {kind!r}: expected one of {', '.join(KINDS)}")
    if kind == "tag":
        tags = sorted(source.tags) if names == "all" else list(dict.fromkeys(names))
        unknown = [n for n in tags if n not in source.tags]
        if unknown:
            raise ContentNotFound(f"tags not in {source_id}: {', '.join(unknown)}",
                                  hint=f"see `reconciler repo show {source_id.split()[-1]}`")
        return [source.tags[n].digest for n in tags], tags
    if names == "all":
        pool = source.content.manifests if kind == "manifest" else source.content.indexes
        return sorted(pool), []
    return resolve_digests(source, names, kind=kind, where=source_id), []

