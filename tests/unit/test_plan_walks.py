"""A big plan's inner loop is walking a repository's reference graph from its tags; a
``plan --no-refresh`` walks each repository's tags once. (With referrers on, the
repositories whose upstream is not refreshed walked them twice: once to keep the untagged
content that may be referrers, once for the unmanaged-content note; a third of the graph
walks of 1,000 x 50. Benchmarks measure the time, this pins the count.)"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from reconciler import api
from reconciler.model import Digest
from reconciler.model.content import ContentSet
from reconciler.ops.cascade import RefGraph
from tests.support.bigstate import generate


def test_a_no_refresh_plan_walks_each_repositorys_tags_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repos = 4
    generate(tmp_path / "store", tmp_path / "repos.yaml", repos=repos, tags=3)
    walks: list[int] = []
    closure = RefGraph.closure

    def counting(self: RefGraph, roots: Iterable[Digest], skip: frozenset[Digest] = frozenset()) -> ContentSet:
        roots = list(roots)
        if roots:
            walks.append(len(roots))
        return closure(self, roots, skip)

    monkeypatch.setattr(RefGraph, "closure", counting)
    store = api.open_store(str(tmp_path / "store"))
    try:
        plan = api.make_plan(store, tmp_path / "repos.yaml", refresh=False)
    finally:
        store.close()
    assert not plan.has_changes, [a.id for a in plan.actions]
    assert len(walks) == repos, walks
