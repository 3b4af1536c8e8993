"""``load_graph``: read the manifests and indexes of a content set from the store into a
pure ``RefGraph`` (the only part of the cascade that does I/O)."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model import Digest, Index, Manifest
from reconciler.ops.cascade import RefGraph
from reconciler.store.protocol import ContentSet, Store


def load_manifests(store: Store, digests: Iterable[Digest]) -> list[Manifest | Index]:
    return [store.manifest_get(d) for d in sorted(set(digests))]


def load_graph(store: Store, content: ContentSet) -> RefGraph:
    """The reference graph of every manifest and index in ``content``."""
    return RefGraph.from_manifests(load_manifests(store, content.manifests | content.indexes))
