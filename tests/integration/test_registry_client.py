"""RegistryClient against a real distribution registry: tag lists (paged), manifests of
every kind by tag and by digest, blobs with verification, and request counts seen from the
registry's own access log."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3.util.connection

from reconciler.errors import RegistryError
from reconciler.model import Digest, Index, Manifest
from reconciler.model import mediatypes as mt
from reconciler.model.registry import RegistryConfig
from reconciler.registry.client import RegistryClient
from tests.support.imagegen import Image, build_image, build_multiarch
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry
from tests.support.tagproxy import TagPagingProxy


def collect(chunks: Iterator[bytes]) -> bytes:
    return b"".join(chunks)


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[RegistryClient]:
    with RegistryClient(RegistryConfig(registry.url)) as c:
        yield c


KINDS: dict[str, Callable[[str], Image]] = {
    "docker-schema2": lambda n: build_image(n),
    "oci-manifest": lambda n: build_image(n, oci=True),
    "docker-list": lambda n: build_multiarch(n),
    "oci-index": lambda n: build_multiarch(n, oci=True),
}


@pytest.mark.parametrize("kind", list(KINDS), ids=list(KINDS))
def test_manifest_head_and_get_every_kind(registry: RunningRegistry, client: RegistryClient, repo_name: str,
                                          kind: str) -> None:
    image: Image = KINDS[kind](repo_name)
    push_image(registry.url, repo_name, image, tags=("v1", "latest"))
    m = image.manifest
    for tag in ("v1", "latest"):  # several tags, one digest
        head = client.manifest_head(repo_name, tag)
        assert head is not None
        assert (head.digest, head.media_type, head.size) == (m.digest, m.media_type, len(m.raw))
    by_tag = client.manifest_get(repo_name, "v1")
    by_digest = client.manifest_get(repo_name, str(m.digest))
    assert by_tag.raw == by_digest.raw == m.raw
    assert by_digest.media_type == m.media_type
    if isinstance(m, Index):
        assert isinstance(by_digest, Index) and len(by_digest.manifests) == 3
        for child in image.children:
            got = client.manifest_get(repo_name, str(child.digest))
            assert isinstance(got, Manifest) and got.raw == child.manifest.raw


def test_blob_fetch_streams_verified_bytes_with_one_get(registry: RunningRegistry, repo_name: str) -> None:
    image = build_image(repo_name, layers=1, payload=4096)
    push_image(registry.url, repo_name, image, tags=("v1",))
    layer = image.manifest.layers[0]
    chunks: list[int] = []

    def sink(stream: Iterator[bytes]) -> bytes:
        data = b""
        for c in stream:
            chunks.append(len(c))
            data += c
        return data

    with RegistryClient(RegistryConfig(registry.url), chunk_size=256) as c:
        c.ping()
        mark = registry.mark()
        data = c.blob_fetch(repo_name, layer.digest, sink)
        seen = registry.requests_since(mark)
    assert hashlib.sha256(data).hexdigest() == layer.digest.hex
    assert len(chunks) > 1 and max(chunks) <= 256  # streamed in chunks, not one buffer
    assert [(a.method, a.kind, a.status) for a in seen] == [("GET", "blob", 200)]
    assert c.stats.counts == {"ping": 1, "blob_get": 1} and c.stats.bytes_received == len(data)


def test_missing_things_are_none_or_clear_errors(registry: RunningRegistry, client: RegistryClient,
                                                 repo_name: str) -> None:
    push_image(registry.url, repo_name, build_image(repo_name), tags=("v1",))
    assert client.manifest_head(repo_name, "nope") is None
    with pytest.raises(RegistryError) as err:
        client.manifest_get(repo_name, "nope")
    assert err.value.status == 404 and "MANIFEST_UNKNOWN" in err.value.codes
    with pytest.raises(RegistryError) as err:
        client.tag_list(repo_name + "-absent")
    assert err.value.status == 404 and "NAME_UNKNOWN" in err.value.codes
    assert f"GET {registry.url}/v2/{repo_name}-absent/tags/list" in str(err.value)
    assert not err.value.temporary


def test_tag_list_without_pagination_is_one_request(registry: RunningRegistry, client: RegistryClient,
                                                    repo_name: str) -> None:
    tags = [f"r{i:02d}" for i in range(12)]
    push_image(registry.url, repo_name, build_image(repo_name), tags=tags)
    client.ping()
    mark = registry.mark()
    assert sorted(client.tag_list(repo_name)) == tags
    assert [a.kind for a in registry.requests_since(mark)] == ["tags"]


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
def test_tag_list_follows_link_pages(registry: RunningRegistry, repo_name: str, absolute: bool) -> None:
    tags = [f"t{i:02d}" for i in range(11)]
    push_image(registry.url, repo_name, build_image(repo_name), tags=tags)
    proxy = TagPagingProxy(registry.url, absolute_links=absolute).start()
    try:
        with RegistryClient(RegistryConfig(proxy.url), tag_page_size=4) as c:
            assert c.tag_list(repo_name) == tags
            assert c.stats.counts["tags"] == 3 == proxy.tag_pages  # 4 + 4 + 3
    finally:
        proxy.stop()


def test_tag_list_follows_server_chosen_pages(registry: RunningRegistry, paging_registry: TagPagingProxy,
                                              repo_name: str) -> None:
    """No ``n`` sent: the registry picks the page size (3 here) and we follow its Links."""
    tags = [f"s{i}" for i in range(7)]
    push_image(registry.url, repo_name, build_image(repo_name), tags=tags)
    with RegistryClient(RegistryConfig(paging_registry.url), tag_page_size=None) as c:
        assert c.tag_list(repo_name) == tags
        assert c.stats.counts["tags"] == 3


def test_blob_shared_between_repositories(registry: RunningRegistry, client: RegistryClient, repo_name: str) -> None:
    a = build_multiarch(repo_name + "a", shared=(b"common base",))
    b = build_image(repo_name + "b", shared=(b"common base",))
    push_image(registry.url, repo_name + "/a", a, tags=("v1",))
    push_image(registry.url, repo_name + "/b", b, tags=("v1",))
    common = b.manifest.layers[0].digest
    assert str(common) in a.all_blobs()
    for repo in (repo_name + "/a", repo_name + "/b"):
        data = client.blob_fetch(repo, common, collect)
        assert Digest.of(data) == common


def test_accept_gets_oci_index_unconverted(registry: RunningRegistry, client: RegistryClient, repo_name: str) -> None:
    """Without the OCI types in Accept, distribution 404s an OCI index; ours is accepted."""
    image = build_multiarch(repo_name, oci=True)
    push_image(registry.url, repo_name, image, tags=("multi",))
    assert client.manifest_get(repo_name, "multi").media_type == mt.OCI_INDEX



def test_heads_404s_and_pings_keep_one_connection(registry: RunningRegistry, client: RegistryClient,
                                                  repo_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep-alive: a HEAD has no body and a 404 or ping has a short one that used to go
    unread, and closing an unread response closed its socket: a refresh opened one TCP
    connection (against a real registry, one TLS handshake) per tag."""
    image = build_image(repo_name)
    push_image(registry.url, repo_name, image, tags=("v1",))
    connects: list[object] = []
    real = urllib3.util.connection.create_connection

    def counting(*args: Any, **kwargs: Any) -> Any:
        connects.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    client.ping()
    for _ in range(10):
        head = client.manifest_head(repo_name, "v1")
        assert head is not None and head.digest == image.manifest.digest
        assert client.manifest_head(repo_name, "missing") is None
    with pytest.raises(RegistryError) as err:
        client.manifest_get(repo_name, "missing")
    assert err.value.status == 404
    assert client.tag_list(repo_name) == ["v1"]
    # 1 ping, 20 HEADs, 10 GETs confirming the HEAD 404s, 1 GET, 1 tag list
    assert client.stats.total == 33
    assert len(connects) == 1
