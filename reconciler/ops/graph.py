"""``load_graph``: read the references of a content set's manifests and indexes from the
store into a pure ``RefGraph`` (the only part of the cascade that does I/O)."""

from __future__ import annotations

from reconciler.model.content import ContentSet
from reconciler.ops.cascade import RefGraph
from reconciler.store.roles.content import ContentStore


def load_graph(store: ContentStore, content: ContentSet) -> RefGraph:
    """The reference graph of every manifest and index in ``content``, from the store's
    recorded references (one query; no manifest file is read). A digest the store does
    not hold is simply not a node (as a graph built from manifests would lack it)."""
    return RefGraph.from_refs(store.manifest_refs(content.manifests | content.indexes))
