"""A plan reads the store in bulk: the SQL statements a ``plan --no-refresh`` issues do not
grow with the number of repositories. (A per-repository read crept in once with the v1
side of the plan: 1,000 repositories were 6,000 statements and 1,000 transactions;
benchmarks measure the time, this pins the shape.)"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler import api
from tests.support.bigstate import generate


def _plan_statements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repos: int) -> list[str]:
    root = tmp_path / f"r{repos}"
    generate(root / "store", root / "repos.yaml", repos=repos, tags=3)
    statements: list[str] = []
    connect: Callable[..., sqlite3.Connection] = sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        # literals collapsed, so the same statement with other values counts as the same
        conn.set_trace_callback(lambda sql: statements.append(re.sub(r"'[^']*'", "?", " ".join(sql.split()))))
        return conn

    with monkeypatch.context() as m:
        m.setattr(sqlite3, "connect", counting_connect)
        store = api.open_store(str(root / "store"))
        try:
            plan = api.make_plan(store, root / "repos.yaml", refresh=False)
        finally:
            store.close()
    assert not plan.has_changes, [a.id for a in plan.actions]
    return statements


def test_plan_statements_do_not_grow_with_repositories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    few = _plan_statements(tmp_path, monkeypatch, 2)
    many = _plan_statements(tmp_path, monkeypatch, 12)
    assert few, "the counting connection saw no statements: the store no longer connects through sqlite3.connect"
    # a statement per repository (or a transaction per repository) shows up as a difference here
    grown = Counter(many) - Counter(few)
    assert len(many) == len(few), "\n".join(f"+{n} {sql[:200]}" for sql, n in grown.most_common(10))
