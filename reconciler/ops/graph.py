"""``load_graph``: read the references of a content set's manifests and indexes from the
store into a pure ``RefGraph`` (the only part of the cascade that does I/O); ``closure_graph``
and ``with_closure``: the graph below some roots, as apply extends it."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model import Digest
from reconciler.model.content import ContentSet, Kind, ManifestRefs
from reconciler.ops.cascade import RefGraph
from reconciler.store.roles.content import ContentStore


def load_graph(store: ContentStore, content: ContentSet) -> RefGraph:
    """The reference graph of every manifest and index in ``content``, from the store's
    recorded references and subjects (two queries; no manifest file is read). A digest the store does
    not hold is simply not a node (as a graph built from manifests would lack it)."""
    digests = content.manifests | content.indexes
    return RefGraph.from_refs(store.manifest_refs(digests), store.manifest_subjects(digests))


def closure_graph(store: ContentStore, roots: Iterable[Digest]) -> RefGraph:
    """The graph of ``roots`` and everything under them, from the store's recorded
    references (``Store.manifest_refs``, as ``ops.graph.load_graph``): one query per
    index level, no manifest file read or parsed."""
    refs: dict[Digest, ManifestRefs] = {}
    level = set(roots)
    while level:
        found = store.manifest_refs(level)
        refs.update(found)
        level = {c for r in found.values() if r.kind is Kind.INDEX for c in r.children} - refs.keys()
    return RefGraph.from_refs(refs, store.manifest_subjects(refs))


def with_closure(store: ContentStore, graph: RefGraph, roots: list[Digest]) -> RefGraph:
    """``graph`` plus the closure of the ``roots`` it lacks. A node already in it brings
    its closure along (the graph is built from complete versions and closures), so the
    common case (an apply of many tags whose content the graph holds) reads nothing and
    copies no graph. Children an index in it lacks (platforms it did not mirror) are read too."""
    missing = [d for d in roots if d not in graph] + [
        c for d in roots if d in graph and graph.kind(d) is Kind.INDEX for c in graph.children(d) if c not in graph]
    return graph.merged(closure_graph(store, missing)) if missing else graph
