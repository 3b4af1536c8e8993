"""The plan-scale fixture generator (tests/support/bigstate.py, reused by the benchmark):
a tiny instance must give a store that already satisfies its desired state."""

from __future__ import annotations

from pathlib import Path

from reconciler import api
from tests.support.bigstate import generate


def test_generated_store_satisfies_its_desired_state(tmp_path: Path) -> None:
    counts = generate(tmp_path / "store", tmp_path / "repos.yaml", repos=12, tags=11)
    assert counts["repositories"] == 12 and counts["tags"] == 12 * 11 and counts["indexes"] == 12
    store = api.open_store(str(tmp_path / "store"))
    try:
        plan = api.make_plan(store, tmp_path / "repos.yaml", refresh=False)
        assert not plan.has_changes, [a.id for a in plan.actions]
        assert not plan.unmanaged
        assert store.check(verify_content=True).ok
    finally:
        store.close()
