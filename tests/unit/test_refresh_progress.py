"""Refresh progress: a rewritten status line on a terminal, a line at most every 10 s in
a log; and the refresh itself reports each upstream as it finishes."""

from __future__ import annotations

import io
from pathlib import Path

from reconciler.cli.refresh_progress import RefreshProgress
from tests.support.planworld import desired, synced


def test_in_a_log_a_line_at_most_every_interval() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = RefreshProgress(tty=False, stream=out, clock=lambda: now[0])
    for i in range(1, 201):
        now[0] = i * 0.25  # 200 upstreams over 50 s
        progress(i, 200, f"r{i}")
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines == [f"refreshing upstreams: {n}/200 done" for n in (40, 80, 120, 160, 200)]


def test_on_a_terminal_one_line_rewritten_then_erased() -> None:
    out = io.StringIO()
    progress = RefreshProgress(tty=True, stream=out)
    progress(1, 2, "web")
    progress(2, 2, "api")
    progress.close()
    text = out.getvalue()
    assert "\n" not in text and "refreshing upstreams 2/2: api" in text and text.endswith("\r\x1b[K")


def test_the_refresh_reports_every_upstream(tmp_path: Path) -> None:
    from reconciler.plan.observe import refresh
    from reconciler.store.sqlite import SQLiteStore
    from tests.support.fakeupstream import FakeUpstream

    store = SQLiteStore(tmp_path / "store")
    seen: list[tuple[int, int, str]] = []
    try:
        specs = [synced(f"r{i}") for i in range(5)]
        upstream = FakeUpstream()
        refresh(store, desired(*specs), lambda feed: upstream, progress=lambda d, t, r: seen.append((d, t, r)))
    finally:
        store.close()
    assert sorted(d for d, _, _ in seen) == [1, 2, 3, 4, 5] and {t for _, t, _ in seen} == {5}
    assert {r for _, _, r in seen} == {f"r{i}" for i in range(5)}
