"""Manifest HEADs go one at a time only until the first answer settles that HEAD works
(``RegistryClient.manifest_head``): HEADs that queued behind that first one then run
side by side. Before, each of them still took the probe lock in turn, so across a 50 ms
round trip a third of a refresh's HEADs went one by one."""

from __future__ import annotations

import threading
import time

from reconciler.model.registry import RegistryConfig
from reconciler.registry.client import RegistryClient
from reconciler.registry.protocol import ManifestHead


def test_heads_queued_behind_the_probe_run_in_parallel_once_it_settles() -> None:
    client = RegistryClient(RegistryConfig(url="http://127.0.0.1:9"))
    lock = threading.Lock()
    in_flight = [0]
    most: list[int] = []
    first_out = threading.Event()

    def fake_head(name: str, reference: str) -> ManifestHead | None:
        with lock:
            in_flight[0] += 1
            if reference != "probe":
                most.append(in_flight[0])
        if reference == "probe":
            first_out.set()
        time.sleep(0.2)  # a round trip
        with lock:
            in_flight[0] -= 1
        client._head_settled = True  # what a HEAD answer with a digest does
        return ManifestHead(None, "", None)

    client._manifest_head = fake_head  # type: ignore[method-assign]  # on purpose: a stand-in for the round trip
    try:
        probe = threading.Thread(target=client.manifest_head, args=("x", "probe"))
        probe.start()
        assert first_out.wait(5)
        queued = [threading.Thread(target=client.manifest_head, args=("x", f"t{i}")) for i in range(5)]
        for t in queued:
            t.start()
        for t in [probe, *queued]:
            t.join(10)
    finally:
        client.close()
    assert len(most) == 5
    assert max(most) >= 3, f"the HEADs queued behind the probe ran {max(most)} at a time"


def test_enough_repositories_are_refreshed_at_once_to_fill_every_registrys_slots() -> None:
    """A repository knows its HEADs only after its tag list: with fewer repositories in
    flight than a registry has slots, the slots idle a round trip per repository."""
    from reconciler.desired.model import RepositorySpec
    from reconciler.plan.observe import MAX_PARALLEL_REPOS, repos_in_flight

    near = RegistryConfig("near", "http://a.example", max_concurrency=16)
    far = RegistryConfig("far", "http://b.example", max_concurrency=6)
    specs = [RepositorySpec(id=f"r{i}", feed=near if i % 2 else far, upstream_name=f"r{i}") for i in range(40)]
    assert repos_in_flight(specs) == 22
    assert repos_in_flight(specs[:1]) == max(MAX_PARALLEL_REPOS, 6)
