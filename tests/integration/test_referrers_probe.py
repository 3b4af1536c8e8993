"""One referrers-API probe per registry and run (``RegistryClient.referrers_api``).

OCI distribution 1.1: a registry with the referrers API never answers 404 to
``GET /v2/<name>/referrers/<digest>``, so the first 404 tells the client that the whole
registry has none. Before, every repository of a plan sent its own probe: against the
distribution registry (no such API) the bench's 20 repositories cost 20 requests that
all answered 404. A registry with the API (``reconciler serve``) is still asked for
every digest."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reconciler.errors import RegistryError
from reconciler.model.referrers import ReferrerPolicy
from reconciler.model.registry import RegistryConfig
from reconciler.ops.referrers import discover
from reconciler.registry.client import RegistryClient
from reconciler.registry.shared import SharedClients
from reconciler.store.sqlite import SQLiteStore
from tests.support import supplychain as sc
from tests.support.imagegen import build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry
from tests.support.serving import commit_tags, run_server

pytestmark = pytest.mark.integration

IMAGES = [build_image(f"probe-{n}", oci=True) for n in range(3)]


@pytest.fixture
def three_repos(registry: RunningRegistry, repo_name: str) -> list[str]:
    names = [f"{repo_name}-{i}" for i in range(3)]
    for name, image in zip(names, IMAGES, strict=True):
        push_image(registry.url, name, image, ["v1"])
    return names


def referrer_requests(registry: RunningRegistry, mark: int) -> list[int]:
    return [a.status for a in registry.requests_since(mark) if "/referrers/" in a.path]


def test_after_a_404_no_repository_of_that_registry_is_probed_again(registry: RunningRegistry,
                                                                     three_repos: list[str]) -> None:
    with RegistryClient(RegistryConfig(name="reg", url=registry.url)) as client:
        client.ping()
        mark = registry.mark()
        found = [discover(client, name, ["v1"], [image.digest], ReferrerPolicy())
                 for name, image in zip(three_repos, IMAGES, strict=True)]
        again = client.referrers(three_repos[0], IMAGES[1].digest)
        sent = referrer_requests(registry, mark)
        assert sent == [404], f"{len(sent)} referrers requests for 3 repositories"
        assert again is None and client.referrers_api is False
    assert [f.api for f in found] == [False, False, False]
    assert [f.requests for f in found] == [1, 0, 0]  # what each discovery sent


def test_repositories_probing_at_once_send_one_probe(registry: RunningRegistry, three_repos: list[str]) -> None:
    """Eight threads (four slots) ask at the same moment: the first probe goes alone and
    the others learn its answer instead of sending their own."""
    config = RegistryConfig(name="reg", url=registry.url, max_concurrency=4)
    answers: list[object] = []
    with SharedClients() as shared:
        views = [shared.borrow(config) for _ in range(8)]
        views[0].client.ping()
        mark = registry.mark()
        start = threading.Barrier(len(views))

        def ask(i: int) -> None:
            start.wait(5)
            answers.append(views[i].referrers(three_repos[i % 3], IMAGES[i % 3].digest))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(views))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(v.stats.total for v in views) == 1  # per-repository counts stay exact
    assert answers == [None] * len(views)
    assert referrer_requests(registry, mark) == [404]


def test_a_failed_probe_settles_nothing(registry: RunningRegistry, three_repos: list[str]) -> None:
    """An error (a 5xx after its retries, a dead connection) says nothing about the API:
    the next call asks again."""
    with RegistryClient(RegistryConfig(name="reg", url=registry.url)) as client:
        real = client._referrers_page
        calls = [0]

        def flaky(url: str, scope: str) -> object:
            calls[0] += 1
            if calls[0] == 1:
                raise RegistryError("GET", url, 503, detail="unavailable", temporary=False)
            return real(url, scope)

        client._referrers_page = flaky  # type: ignore[assignment,method-assign]  # on purpose: one failed answer
        with pytest.raises(RegistryError):
            client.referrers(three_repos[0], IMAGES[0].digest)
        assert client.referrers_api is None
        mark = registry.mark()
        assert client.referrers(three_repos[0], IMAGES[0].digest) is None
        assert client.referrers_api is False
    assert referrer_requests(registry, mark) == [404]


def test_a_registry_with_the_api_is_asked_for_every_digest(tmp_path: Path) -> None:
    image, other = build_image("probe-api", oci=True), build_image("probe-api-2", oci=True)
    sbom = sc.oci_referrer(image, sc.SPDX, b'{"spdxVersion":"SPDX-2.3"}')
    store = SQLiteStore(tmp_path / "store")
    try:
        store.publish("app", name="up/app", version=commit_tags(store, "app", {"1.0": image}, extra=(sbom,)),
                      protected=False)
        store.publish("other", name="up/other", version=commit_tags(store, "other", {"1.0": other}),
                      protected=False)
    finally:
        store.close()
    with run_server(tmp_path / "store", tmp_path / "serve.log") as srv, \
            RegistryClient(RegistryConfig(name="serve", url=srv.url)) as client:
        listed = client.referrers("up/app", image.digest)
        assert client.referrers_api is True
        assert client.referrers("up/other", other.digest) == []  # asked, not assumed
        assert client.referrers("up/app", sbom.digest) == []
        asked = client.stats.counts.get("referrers", 0)
    assert listed is not None and [d.digest for d in listed] == [sbom.digest]
    assert asked == 3
