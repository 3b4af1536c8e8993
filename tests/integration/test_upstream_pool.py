"""One upstream client per registry for a whole plan or apply (``api.UpstreamPool``,
``registry.shared``): seen from the real registry's access log, several repositories of
one registry cost one ``/v2/`` ping, and the plan's request count stays exact."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from reconciler import api
from reconciler.errors import RegistryError
from reconciler.model.registry import RegistryConfig
from reconciler.registry.client import RegistryClient
from reconciler.registry.shared import SharedClients
from tests.support.imagegen import build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry

IMAGES = [build_image(f"pool-{n}") for n in range(3)]


def write_yaml(path: Path, registry: RunningRegistry, names: list[str]) -> Path:
    repos = "".join(f"  r{i}:\n    feed: up\n    upstream_name: {name}\n" for i, name in enumerate(names))
    path.write_text(f"version: 1\nregistries:\n  up:\n    url: {registry.url}\n    max_concurrency: 2\n"
                    f"repositories:\n{repos}")
    return path


@pytest.fixture
def three_repos(registry: RunningRegistry, repo_name: str) -> list[str]:
    names = [f"{repo_name}-{i}" for i in range(3)]
    for name, image in zip(names, IMAGES, strict=True):
        push_image(registry.url, name, image, ["v1", "v2"])
    return names


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_plan_and_apply_over_several_repositories_ping_the_registry_once(
        command: str, registry: RunningRegistry, three_repos: list[str], tmp_path: Path) -> None:
    yaml = write_yaml(tmp_path / "repos.yaml", registry, three_repos)
    store = api.open_store(str(tmp_path / "store"))
    try:
        mark = registry.mark()
        if command == "plan":
            plan = api.make_plan(store, yaml)
        else:
            plan, result = api.apply_file(store, yaml)
            assert result.ok
            assert set(store.versions_latest()["r2"].tags) == {"v1", "v2"}
        seen = [line for line in registry.requests_since(mark) if line.agent.startswith("reconciler")]
    finally:
        store.close()
    assert [line.kind for line in seen].count("ping") == 1
    # every repository listed its tags and GOT both of them (new to the store: no HEAD
    # first) through the one client
    assert [line.kind for line in seen].count("tags") == 3
    # the per-repository counts (each repository's borrowed view) add up to what was sent
    # during the refresh: one ping, three tag lists, six GETs by tag (which also size the
    # download), one referrers probe for the registry (a 404: no referrers API, so no
    # repository asks again); the apply reuses those manifests
    assert [line.kind for line in seen].count("other") == 1  # the probe
    assert plan.refresh.requests == 1 + 3 + 6 + 1


def test_views_share_one_client_and_close_only_with_the_pool() -> None:
    config = RegistryConfig("http://127.0.0.1:9", max_concurrency=2)
    with SharedClients() as shared:
        a, b = shared.borrow(config), shared.borrow(config)
        other = shared.borrow(RegistryConfig("http://127.0.0.1:10"))
        assert a.client is b.client and other.client is not a.client
        a.close()
        assert shared.borrow(config).client is a.client
    assert shared.clients == {}


def test_max_concurrency_holds_across_every_borrowed_view() -> None:
    """Six repositories calling at once through their own views: never more than the
    registry's ``max_concurrency`` (2) calls in flight."""
    config = RegistryConfig("http://127.0.0.1:9", max_concurrency=2)
    active, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    class Slow(RegistryClient):
        def tag_list(self, name: str) -> list[str]:
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            release.wait(0.2)  # long enough for the others to pile up if nothing stopped them
            with lock:
                active[0] -= 1
            return [name]

    with SharedClients(Slow) as shared:
        views = [shared.borrow(config) for _ in range(6)]
        results: list[list[str]] = []
        threads = [threading.Thread(target=lambda v=v, i=i: results.append(v.tag_list(f"r{i}")))
                   for i, v in enumerate(views)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert sorted(r[0] for r in results) == [f"r{i}" for i in range(6)]
    assert peak[0] == 2


def test_the_ping_sent_ahead_is_counted_once_by_the_first_view_that_calls(registry: RunningRegistry,
                                                                           three_repos: list[str]) -> None:
    """``connect_ahead`` pings before anyone borrows the client (its round trips overlap
    the plan's start); the first view to make a call counts it, so the per-repository
    counts still add up to what was sent."""
    config = RegistryConfig(registry.url)
    with SharedClients() as shared:
        mark = registry.mark()
        shared.connect_ahead(config)
        shared.connect_ahead(config)  # once per registry
        first, second = shared.borrow(config), shared.borrow(config)
        deadline = time.monotonic() + 10
        while not first.client._pinged and time.monotonic() < deadline:  # no call made: only the ping ahead
            time.sleep(0.01)
        sent_ahead = [line.kind for line in registry.requests_since(mark)]
        assert sorted(second.tag_list(three_repos[1])) == ["v1", "v2"]
        assert sorted(first.tag_list(three_repos[0])) == ["v1", "v2"]
    assert sent_ahead == ["ping"]
    assert second.stats.counts == {"ping": 1, "tags": 1} and first.stats.counts == {"tags": 1}
    assert [line.kind for line in registry.requests_since(mark)] == ["ping", "tags", "tags"]


def test_a_ping_ahead_that_fails_leaves_the_error_to_the_first_request() -> None:
    """Nothing listens: the ping sent ahead fails quietly, and the first real request
    reports the failure as it always did; with no retries, the ping ahead was its one
    attempt."""
    config = RegistryConfig("http://127.0.0.1:9", retries=0, timeout=2)
    with SharedClients() as shared:
        shared.connect_ahead(config)
        view = shared.borrow(config)
        with pytest.raises(RegistryError, match="127.0.0.1:9"):
            view.tag_list("any/name")
    assert view.stats.counts["ping"] == 1


def test_a_stalled_registry_is_not_waited_out_once_more_for_the_ping_ahead() -> None:
    """A registry that accepts connections and never answers: the ping sent ahead times
    out, and counts as the first request's first attempt. The request then retries once
    (``retries: 1``), so the registry sees two connections in all, as it did before
    pings were sent ahead (not three: one more timeout of the user's time)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)  # held open, never answered

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    config = RegistryConfig(f"http://127.0.0.1:{port}", retries=1, timeout=0.5)
    try:
        with SharedClients() as shared:
            shared.connect_ahead(config)
            view = shared.borrow(config)
            with pytest.raises(RegistryError, match=f"127.0.0.1:{port}"):
                view.tag_list("any/name")
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert len(accepted) == 2
    assert view.stats.counts["ping"] == 2
