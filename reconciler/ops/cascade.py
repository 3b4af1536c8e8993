"""The cascade rules, as pure functions over a reference graph.

The graph is ``tags -> indexes -> manifests -> blobs`` (an OCI index may also list
another index). ``cascade_remove`` walks it the way Pulp 3's ``recursive_remove`` does:
it works out what *must remain* (everything a remaining tag or a remaining index needs,
and everything the caller did not name or cascade into) and removes the rest of the
candidates. The rules it implements (docs/original-system.md, "The cascade rules"):

- removing a tag removes only the tag (``with_targets=True`` also drops the tag's target
  when nothing else needs it: the mirror rule);
- removing a manifest removes its tags and the blobs no remaining manifest uses;
- removing an index removes its tags, the manifests (and nested indexes) it lists that
  no remaining tag points at and no remaining index lists, and their orphaned blobs;
- removing a manifest or index that a remaining index lists is refused, naming the
  indexes (the original allowed it and corrupted the list).

Nothing here touches a store; ``reconciler.ops.graph.load_graph`` builds the graph.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import RemovalRefused
from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import ContentSet, Kind, ManifestRefs
from reconciler.model.mediatypes import is_index
from reconciler.model.referrers import cosign_tags
from reconciler.ops.state import RepoState

#: "not worked out yet" in ``RefGraph._leaves`` (None there means "not plain blobs")
_UNKNOWN: Any = object()


class RefGraph:
    """Nodes are manifests and indexes: ``digest -> (kind, children)``. Blobs are leaves
    and need no node. A child that is not a node is a blob when its parent is a manifest
    and a manifest (unknown to this graph) when its parent is an index."""

    def __init__(self, nodes: Mapping[Digest, tuple[Kind, Iterable[Digest]]],
                 child_kinds: Mapping[Digest, Kind] | None = None,
                 subjects: Mapping[Digest, tuple[Digest, str | None]] | None = None) -> None:
        self._nodes = {d: (Kind(k), tuple(children)) for d, (k, children) in nodes.items()}
        self._child_kinds = dict(child_kinds or {})
        #: referrer -> (its OCI ``subject``, its artifact type): not a reference (a referrer
        #: follows its subject when it is copied or removed, the subject never needs it)
        self._subjects = dict(subjects or {})
        self._parents_map: dict[Digest, frozenset[Digest]] | None = None  # built on first use
        #: root -> ``_root_blobs`` of it, filled as closures meet them (a graph's nodes
        #: do not change once it is built)
        self._leaves: dict[Digest, frozenset[Digest] | None] = {}
        #: the nodes' and the recorded kinds' digests as sets, for ``_plain_blobs``
        self._keys: tuple[frozenset[Digest], frozenset[Digest]] | None = None
        self._referrers_map: dict[Digest, tuple[Digest, ...]] | None = None

    @property
    def _parents(self) -> dict[Digest, frozenset[Digest]]:
        if self._parents_map is None:
            parents: dict[Digest, set[Digest]] = {}
            for d, (_, children) in self._nodes.items():
                for c in children:
                    parents.setdefault(c, set()).add(d)
            self._parents_map = {c: frozenset(p) for c, p in parents.items()}
        return self._parents_map

    @classmethod
    def from_refs(cls, refs: Mapping[Digest, ManifestRefs],
                  subjects: Mapping[Digest, tuple[Digest, str | None]] | None = None) -> RefGraph:
        """Build from the store's recorded references (``Store.manifest_refs``) and
        subjects (``Store.manifest_subjects``): the same graph ``from_manifests`` gives
        for those manifests, without parsing any."""
        nodes: dict[Digest, tuple[Kind, tuple[Digest, ...]]] = {}
        kinds: dict[Digest, Kind] = {}
        for d, r in refs.items():
            nodes[d] = (r.kind, r.children)
            if r.kind is Kind.INDEX:
                for child, kind in zip(r.children, r.child_kinds, strict=False):
                    kinds.setdefault(child, kind)
        graph = cls.__new__(cls)
        graph._nodes, graph._child_kinds, graph._parents_map, graph._leaves = nodes, kinds, None, {}
        graph._keys = None
        graph._subjects, graph._referrers_map = dict(subjects or {}), None
        return graph

    @classmethod
    def from_manifests(cls, manifests: Iterable[Manifest | Index]) -> RefGraph:
        """Build from parsed manifests; index entries keep their declared kind (a nested
        OCI index stays an index even when it is not itself in the graph)."""
        nodes: dict[Digest, tuple[Kind, tuple[Digest, ...]]] = {}
        kinds: dict[Digest, Kind] = {}
        subjects: dict[Digest, tuple[Digest, str | None]] = {}
        for m in manifests:
            if m.subject is not None:
                subjects[m.digest] = (m.subject.digest, m.referrer_type)
            if isinstance(m, Index):
                nodes[m.digest] = (Kind.INDEX, m.children())
                for d in m.manifests:
                    kinds.setdefault(d.digest, Kind.INDEX if is_index(d.media_type) else Kind.MANIFEST)
            else:
                nodes[m.digest] = (Kind.MANIFEST, m.references())
        return cls(nodes, kinds, subjects)

    def merged(self, other: RefGraph) -> RefGraph:
        """A graph with both graphs' nodes (for copies: source and target together)."""
        graph = RefGraph.__new__(RefGraph)
        graph._nodes = {**other._nodes, **self._nodes}
        graph._child_kinds = {**other._child_kinds, **self._child_kinds}
        graph._subjects = {**other._subjects, **self._subjects}
        graph._parents_map = graph._referrers_map = None
        graph._leaves, graph._keys = {}, None
        return graph

    # -- queries ----------------------------------------------------------------------
    def __contains__(self, digest: object) -> bool:
        return digest in self._nodes

    def kind(self, digest: Digest, *, parent_kind: Kind | None = None) -> Kind:
        if digest in self._nodes:
            return self._nodes[digest][0]
        if digest in self._child_kinds:
            return self._child_kinds[digest]
        return Kind.BLOB if parent_kind in (Kind.MANIFEST, None) else Kind.MANIFEST

    def children(self, digest: Digest) -> tuple[Digest, ...]:
        node = self._nodes.get(digest)
        return node[1] if node else ()

    def subject(self, digest: Digest) -> Digest | None:
        """The OCI ``subject`` of a referrer (None: not a referrer, or not known)."""
        found = self._subjects.get(digest)
        return found[0] if found is not None else None

    def artifact_type(self, digest: Digest) -> str | None:
        """A referrer's artifact type, as the referrers API lists it (None: not known)."""
        found = self._subjects.get(digest)
        return found[1] if found is not None else None

    def referrers(self, digest: Digest) -> tuple[Digest, ...]:
        """The known manifests and indexes whose ``subject`` is ``digest``, by digest."""
        if self._referrers_map is None:
            found: dict[Digest, list[Digest]] = {}
            for r, (subject, _) in self._subjects.items():
                found.setdefault(subject, []).append(r)
            self._referrers_map = {d: tuple(sorted(rs, key=str)) for d, rs in found.items()}
        return self._referrers_map.get(digest, ())

    def parents(self, digest: Digest) -> frozenset[Digest]:
        """Every graph node that references ``digest``."""
        return self._parents.get(digest, frozenset())

    def closure(self, roots: Iterable[Digest], skip: Container[Digest] = ()) -> ContentSet:
        """``roots`` and everything under them, by kind. Roots not in the graph count as
        manifests unless their kind is known (from an index entry). ``skip``: index
        children not to follow (a platform subset; ``left_out`` names those met)."""
        roots = tuple(roots)
        fast = self._manifests_closure(roots)
        return fast if fast is not None else self._walk(roots, skip)

    def _manifests_closure(self, roots: tuple[Digest, ...]) -> ContentSet | None:
        """The closure of roots that are all image manifests whose children are plain
        blobs (a repository's tags, nearly always), as the union of each manifest's
        blob set, worked out once per manifest: the walk hashed every digest four times
        per tag, in Python (``Digest.__hash__``), and was half of a big plan's diff.
        None when any root is something else (an index, a manifest with a child the walk
        would take another way) or a digest would be both a blob and a manifest: the
        walk then decides, as it always has. Otherwise it is the walk's result: what it
        reaches does not depend on the order, and here every digest has one kind."""
        leaves = self._leaves
        manifests: set[Digest] = set()
        blob_sets: list[frozenset[Digest]] = []
        for r in roots:
            blobs = leaves.get(r, _UNKNOWN)
            if blobs is _UNKNOWN:
                blobs = leaves[r] = self._root_blobs(r)
            if blobs is None:
                return None
            manifests.add(r)
            blob_sets.append(blobs)
        all_blobs = frozenset().union(*blob_sets)  # the sets' own hashes: no Digest.__hash__ calls
        if not all_blobs.isdisjoint(manifests):
            return None
        return ContentSet(all_blobs, frozenset(manifests))

    def _root_blobs(self, root: Digest) -> frozenset[Digest] | None:
        """What the walk adds below ``root`` when it takes ``root`` as a manifest whose
        children are plain blobs (nothing for a root outside the graph, which it takes
        as a manifest unless an index recorded another kind); None otherwise."""
        node = self._nodes.get(root)
        if node is None:
            return frozenset() if self._child_kinds.get(root, Kind.MANIFEST) is Kind.MANIFEST else None
        return self._plain_blobs(node[1]) if node[0] is Kind.MANIFEST else None

    def _plain_blobs(self, children: tuple[Digest, ...]) -> frozenset[Digest] | None:
        """A manifest's children as the walk takes them when each is a blob (not a node,
        no other kind recorded for it); None otherwise. Set against set: the hashes are
        the sets' own, so each child is hashed once, when its set is made."""
        found = frozenset(children)
        if self._keys is None:
            self._keys = (frozenset(self._nodes), frozenset(self._child_kinds))
        nodes, kinds = self._keys
        if not found.isdisjoint(nodes):
            return None
        if not found.isdisjoint(kinds) and any(self._child_kinds.get(c) is not Kind.BLOB for c in found & kinds):
            return None
        return found

    def _walk(self, roots: Iterable[Digest], skip: Container[Digest]) -> ContentSet:
        """The closure by walking the graph (any roots)."""
        # the hot loop of a big plan (every repository's tags, for prune): ``kind`` and
        # ``children`` inlined, and a child that is not a node (a blob, or a manifest
        # outside the graph) taken at once instead of going through the stack: it has
        # nothing below it, and its kind is the same whichever parent reaches it (an
        # index's children have their kinds recorded), so the result is the same
        out: dict[Kind, set[Digest]] = {Kind.BLOB: set(), Kind.MANIFEST: set(), Kind.INDEX: set()}
        nodes, child_kinds = self._nodes, self._child_kinds
        stack = [(r, self.kind(r, parent_kind=Kind.INDEX)) for r in roots]
        seen: set[Digest] = set()
        while stack:
            digest, kind = stack.pop()
            if digest in seen:
                continue
            seen.add(digest)
            out[kind].add(digest)
            node = nodes.get(digest)
            if node is None:
                continue
            default = Kind.BLOB if kind is Kind.MANIFEST else Kind.MANIFEST
            for child in node[1]:
                if child in seen or (kind is Kind.INDEX and child in skip):
                    continue
                found = nodes.get(child)
                if found is None:
                    seen.add(child)
                    out[child_kinds.get(child, default)].add(child)
                else:
                    stack.append((child, found[0]))
        return ContentSet(frozenset(out[Kind.BLOB]), frozenset(out[Kind.MANIFEST]), frozenset(out[Kind.INDEX]))


    def left_out(self, content: ContentSet, skip: Container[Digest]) -> frozenset[Digest]:
        """Children of ``content``'s indexes in ``skip`` that ``content`` lacks: what a
        closure with ``skip`` left out (a version records them as absent)."""
        return frozenset(c for i in content.indexes for c in self.children(i) if c in skip and c not in content)


@dataclass(frozen=True)
class Removal:
    """The state after a removal and exactly what it removed."""

    state: RepoState
    tags: frozenset[str]
    content: ContentSet

    @property
    def manifests(self) -> frozenset[Digest]:
        return self.content.manifests

    @property
    def indexes(self) -> frozenset[Digest]:
        return self.content.indexes

    @property
    def blobs(self) -> frozenset[Digest]:
        return self.content.blobs

    def to_json(self) -> dict[str, list[str]]:
        return {"tags": sorted(self.tags), "indexes": sorted(map(str, self.indexes)),
                "manifests": sorted(map(str, self.manifests)), "blobs": sorted(map(str, self.blobs))}


def cascade_remove(state: RepoState, graph: RefGraph, *, tags: Iterable[str] = (),
                   manifests: Iterable[Digest] = (), indexes: Iterable[Digest] = (),
                   with_targets: bool = False) -> Removal:
    """Remove the named tags, manifests and indexes with the cascade rules above.

    What refers to removed content goes with it: the referrers whose ``subject`` is a
    removed manifest or index, and cosign's classic tags of a removed digest
    (``sha256-<hex>.sig``, ``.att``, ``.sbom``) with what they point at, and so on for
    theirs, unless a remaining tag or index still needs one (so no referrer is left
    pointing at a subject the repository no longer holds).

    Names and digests must be in ``state`` (callers resolve and report unknown ones).
    Raises ``RemovalRefused`` naming the remaining indexes that list an explicitly named
    manifest or index.
    """
    explicit = frozenset(manifests) | frozenset(indexes)
    removed_tags = set(tags)
    followers: set[Digest] = set()
    while True:
        removal = _cascade(state, graph, removed_tags, explicit, followers, with_targets)
        more_tags, more = _followers(state, graph, removal)
        if more_tags <= removed_tags and more <= followers:
            return removal
        removed_tags |= more_tags
        followers |= more


def _followers(state: RepoState, graph: RefGraph, removal: Removal) -> tuple[set[str], set[Digest]]:
    """The cosign tags of what ``removal`` removes, and the referrers of it (with the
    targets of those tags) the state still holds."""
    gone = removal.manifests | removal.indexes
    held = removal.state.content.manifests | removal.state.content.indexes
    tags = {name for d in gone for name in cosign_tags(d) if name in state.tags}
    digests = {r for d in gone for r in graph.referrers(d) if r in held}
    digests |= {state.tags[name].digest for name in tags}
    return tags, digests


def _cascade(state: RepoState, graph: RefGraph, tags: set[str], explicit: frozenset[Digest],
             followers: set[Digest], with_targets: bool) -> Removal:
    content = state.content
    removed_tags = set(tags) | set(state.tags_of(explicit))
    remaining_tags = {n: e for n, e in state.tags.items() if n not in removed_tags}

    # candidates: what was named, what the removed indexes list (recursively), what
    # follows removed content (referrers), and with with_targets what the removed tags
    # pointed at
    roots = set(explicit) | followers
    if with_targets:
        roots |= {state.tags[n].digest for n in removed_tags if n in state.tags}
    reach = graph.closure(roots)
    candidates = (reach.manifests | reach.indexes) & (content.manifests | content.indexes)

    # must remain: every manifest/index that is not a candidate, plus the targets of the
    # remaining tags, plus whatever a remaining index lists (walked to a fixpoint)
    keep = set((content.manifests | content.indexes) - candidates) | {e.digest for e in remaining_tags.values()}
    keep &= content.manifests | content.indexes
    stack = [d for d in keep if d in content.indexes]
    while stack:
        for child in graph.children(stack.pop()):
            if child not in keep and (child in content.manifests or child in content.indexes):
                keep.add(child)
                if child in content.indexes:
                    stack.append(child)

    refused = {d: sorted(str(p) for p in graph.parents(d) if p in keep and p in content.indexes)
               for d in explicit if d in keep}
    if refused:
        lines = "; ".join(f"{d} is listed by index {', '.join(ps)}" for d, ps in sorted(refused.items()))
        raise RemovalRefused(
            f"refusing to remove content that a remaining index lists: {lines}",
            hint="remove the listing index(es) in the same call (remove index ...), or keep the manifest",
        )

    gone = candidates - keep
    gone_m = frozenset(d for d in gone if d in content.manifests)
    gone_i = frozenset(d for d in gone if d in content.indexes)
    # blobs: those of removed manifests that no remaining manifest uses
    used = {b for m in (content.manifests - gone_m) for b in graph.children(m)}
    gone_b = frozenset(b for m in gone_m for b in graph.children(m) if b in content.blobs and b not in used)
    removed = ContentSet(gone_b, gone_m, gone_i)
    new_state = RepoState(content.difference(removed), remaining_tags, state.absent)
    return Removal(new_state, frozenset(n for n in removed_tags if n in state.tags), removed)


def unreferenced(state: RepoState, graph: RefGraph) -> ContentSet:
    """Content in ``state`` that no tag needs, directly or through an index or manifest
    (what ``prune`` removes; mirror applies it to what vanished tags pointed at)."""
    needed = graph.closure(e.digest for e in state.tags.values())
    return state.content.difference(needed)


def missing_references(state: RepoState, graph: RefGraph, roots: Iterable[Digest]) -> ContentSet:
    """What ``roots`` need (themselves included) that is not in ``state`` (an index
    child ``state`` lacks on purpose, a platform it did not mirror, is not needed)."""
    return graph.closure(roots, state.absent).difference(state.content)
