"""The state transformation of each action, shared by the diff and by apply.

The diff predicts a repository's next state by running these over the observed state;
apply runs the very same functions over the real state once the content is in the store.
So what the plan shows is, by construction, what apply commits. All pure: a
``RepoState`` and a ``RefGraph`` in, a new ``RepoState`` out; the cascade rules are the
ops ones (``cascade_remove``, ``unreferenced``).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

from reconciler.model import Digest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.ops.cascade import RefGraph, cascade_remove, unreferenced
from reconciler.ops.state import RepoState
from reconciler.plan.actions import (
    ContentAction,
    CopyContent,
    CopyReferrers,
    CopyTag,
    PinTag,
    RemoveContent,
    RemoveTag,
    SyncReferrers,
    SyncTag,
)


@dataclass(frozen=True)
class Step:
    """A new state and what going there removed (for counts and renderings)."""

    state: RepoState
    removed: ContentSet = ContentSet()
    removed_tags: int = 0


def counts(content: ContentSet, tags: int = 0) -> dict[str, int]:
    """What an action adds or removes, for the plan: the non-zero counts by kind, and
    ``tags`` when some."""
    out = {k: v for k, v in content.counts().items() if v}
    if tags:
        out["tags"] = tags
    return out


def intersect(a: ContentSet, b: ContentSet) -> ContentSet:
    return a.difference(a.difference(b))


def drop_content(state: RepoState, graph: RefGraph, content: ContentSet) -> Step:
    """Remove ``content`` (untagged manifests/indexes and stray blobs) with the cascade."""
    if not len(content):
        return Step(state)
    removal = cascade_remove(state, graph, manifests=content.manifests, indexes=content.indexes)
    stray = ContentSet(blobs=content.blobs & removal.state.content.blobs)
    return Step(removal.state.without_content(stray), removal.content.union(stray), len(removal.tags))


def orphans_under(state: RepoState, graph: RefGraph, roots: Iterable[Digest]) -> ContentSet:
    """Content below ``roots`` that no tag of ``state`` needs any more, short of what a
    held index still lists: an index left untagged (a pin moved its tag to one of its
    children) keeps its children until it goes itself (the mirror's prune), else the
    cascade refuses to take a child from under it."""
    orphans = intersect(unreferenced(state, graph), graph.closure(roots))
    held = state.content.indexes - orphans.indexes
    return orphans.difference(graph.closure(held)) if held else orphans


def _with_closure(state: RepoState, graph: RefGraph, roots: Iterable[Digest], skip: Container[Digest]) -> RepoState:
    """``state`` plus the closure of ``roots`` without the index children in ``skip``
    (platforms not mirrored), which it records as absent."""
    closure = graph.closure(roots, skip)
    return state.with_content(closure, graph.left_out(closure, skip))


def set_tag(state: RepoState, graph: RefGraph, tag: str, digest: Digest, origin: Origin, *,
            cascade: bool = False, skip: Container[Digest] = ()) -> Step:
    """Point ``tag`` at ``digest`` and add its closure (``skip``: index children left
    out). With ``cascade`` (a mirror), the old target's content that nothing else needs
    any more goes (as ops' sync does)."""
    old = state.tags.get(tag)
    new = _with_closure(state, graph, [digest], skip).with_tags({tag: TagEntry(digest, origin)})
    if cascade and old is not None and old.digest != digest:
        return drop_content(new, graph, orphans_under(new, graph, [old.digest]))
    return Step(new)


def remove_tag(state: RepoState, graph: RefGraph, tag: str, *, cascade: bool = False) -> Step:
    removal = cascade_remove(state, graph, tags=[tag], with_targets=cascade)
    return Step(removal.state, removal.content, len(removal.tags))


def add_content(state: RepoState, graph: RefGraph, roots: Iterable[Digest], skip: Container[Digest] = ()) -> Step:
    return Step(_with_closure(state, graph, roots, skip))


def add_referrers(state: RepoState, graph: RefGraph, digests: Iterable[Digest], tags: Mapping[str, str],
                  origin: Origin = Origin.SYNC) -> Step:
    """The referrers ``digests`` with their closures, and cosign's ``tags`` (with ``origin``:
    synced, or copied)."""
    new = _with_closure(state, graph, digests, ())
    for tag, digest in sorted(tags.items()):
        new = set_tag(new, graph, tag, Digest.parse(digest), origin).state
    return Step(new)


def remove_content(state: RepoState, graph: RefGraph, kind: str, digests: Iterable[Digest]) -> Step:
    """``kind`` "manifest"/"index": declared removals (refused when an index lists one);
    "untagged": prune of content no tag needs (the digests plus their orphaned blobs)."""
    wanted = [d for d in digests if d in state.content]
    if kind == "untagged":
        roots = ContentSet(manifests=frozenset(d for d in wanted if d in state.content.manifests),
                           indexes=frozenset(d for d in wanted if d in state.content.indexes))
        step = drop_content(state, graph, roots)
        # blobs that no remaining manifest uses (left behind by earlier changes)
        used = {b for m in step.state.content.manifests for b in graph.children(m)}
        stray = ContentSet(blobs=frozenset(step.state.content.blobs - used))
        return Step(step.state.without_content(stray), step.removed.union(stray), step.removed_tags)
    key = "indexes" if kind == "index" else "manifests"
    removal = cascade_remove(state, graph, **{key: wanted})  # type: ignore[arg-type]
    return Step(removal.state, removal.content, len(removal.tags))


def run_step(action: ContentAction, state: RepoState, graph: RefGraph) -> Step:
    """The state transformation of a content action but an upload (apply imports the
    file first, then sets its tags with ``set_tag``)."""
    match action:
        case SyncTag():
            return set_tag(state, graph, action.tag, action.digest, action.origin, cascade=action.cascade,
                           skip=frozenset(action.skipped))
        case SyncReferrers():
            return add_referrers(state, graph, action.digests, action.referrer_tags)
        case CopyReferrers():
            return add_referrers(state, graph, action.digests, action.referrer_tags, Origin.COPY)
        case CopyTag() | PinTag():
            return set_tag(state, graph, action.tag, action.digest, action.new_origin, skip=frozenset(action.skipped))
        case RemoveTag():
            return remove_tag(state, graph, action.tag, cascade=action.cascade)
        case CopyContent():
            return add_content(state, graph, action.digests, frozenset(action.skipped))
        case RemoveContent():
            return remove_content(state, graph, action.kind, action.digests)
    raise ValueError(f"{action.op.value} is not a pure state step")
