"""Faults a real registry cannot produce on demand, through ``responses`` with the real
``RegistryClient``: 429 with Retry-After, 503 twice, a truncated blob, a blob whose bytes
do not match its digest, a tag deleted between listing and fetching. A failed sync
leaves the repository exactly as it was and ``store check`` passes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from reconciler import api
from reconciler.cli import main
from reconciler.model import Digest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.model.registry import RegistryConfig
from reconciler.ops.sync import SyncResult
from reconciler.registry.client import RegistryClient
from reconciler.registry.protocol import UpstreamSource
from reconciler.registry.retry import RetryPolicy
from reconciler.store.protocol import Store
from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import Image, build_image, store_image

BASE = "http://upstream.test"
NAME = "lib/app"


class Upstream:
    """A registry made of ``responses`` routes; ``sleeps`` records retry waits."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.rsps = rsps
        self.sleeps: list[float] = []
        rsps.add(responses.GET, f"{BASE}/v2/", status=200)

    def factory(self, config: RegistryConfig) -> UpstreamSource:
        return RegistryClient(config, retry=RetryPolicy(sleep=self.sleeps.append))

    def tags(self, *tags: str, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.rsps.add(responses.GET, f"{BASE}/v2/{NAME}/tags/list", status=status, headers=headers,
                      json={"name": NAME, "tags": list(tags)} if status == 200 else {"errors": []})

    def manifest(self, image: Image, *tags: str) -> None:
        m = image.manifest
        headers = {"Docker-Content-Digest": str(m.digest), "Content-Type": m.media_type}
        for ref in (*tags, str(m.digest)):
            url = f"{BASE}/v2/{NAME}/manifests/{ref}"
            self.rsps.add(responses.HEAD, url, status=200, headers=headers)
            self.rsps.add(responses.GET, url, status=200, body=m.raw, headers=headers)

    def blob(self, digest: str, body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.rsps.add(responses.GET, f"{BASE}/v2/{NAME}/blobs/{digest}", status=status, body=body, headers=headers)

    def image(self, image: Image, *tags: str, skip_blobs: tuple[str, ...] = ()) -> None:
        self.manifest(image, *tags)
        for d, data in image.blobs.items():
            if d not in skip_blobs:
                self.blob(d, data)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield Upstream(rsps)


def run_sync(store: Store, upstream: Upstream, repo: str = "app") -> SyncResult:
    return api.sync_repository(store, repo, feed=BASE, upstream_name=NAME, source_factory=upstream.factory)


def snapshot(store: Store, repo: str) -> tuple[int, dict[str, TagEntry], ContentSet]:
    v = store.version_get(repo)
    return v.number, dict(v.tags), v.content


def test_429_with_retry_after_then_success(store: Store, upstream: Upstream) -> None:
    img = build_image("app")
    upstream.tags("v1")
    layer = next(iter(img.blobs))
    upstream.blob(layer, b"", status=429, headers={"Retry-After": "7"})
    upstream.image(img, "v1")
    result = run_sync(store, upstream)
    assert result.version == 1 and result.blobs_added == len(img.blobs)
    assert upstream.sleeps == [7.0]
    assert store.check().ok


def test_503_twice_then_success(store: Store, upstream: Upstream) -> None:
    img = build_image("app")
    upstream.tags(status=503)
    upstream.tags(status=503)
    upstream.tags("v1")
    upstream.image(img, "v1")
    result = run_sync(store, upstream)
    assert result.tags_added == ("v1",)
    assert len(upstream.sleeps) == 2
    assert store.check().ok


def test_truncated_blob_is_retried_then_succeeds(store: Store, upstream: Upstream) -> None:
    img = build_image("app")
    layer, data = next(iter(img.blobs.items()))
    upstream.tags("v1")
    upstream.blob(layer, data[: len(data) // 2], headers={"Content-Length": str(len(data))})
    upstream.image(img, "v1")
    result = run_sync(store, upstream)
    assert result.version == 1 and len(upstream.sleeps) == 1
    assert store.blob_has(Digest.parse(layer)) and store.check().ok


def test_blob_always_truncated_fails_and_changes_nothing(store: Store, upstream: Upstream) -> None:
    old, new = build_image("old"), build_image("new")
    upstream.tags("v1")
    upstream.image(old, "v1")
    run_sync(store, upstream)
    before = snapshot(store, "app")
    upstream.rsps.reset()
    upstream.rsps.add(responses.GET, f"{BASE}/v2/", status=200)
    upstream.tags("v1")
    layer, data = next(iter(new.blobs.items()))
    upstream.blob(layer, data[:10], headers={"Content-Length": str(len(data))})
    upstream.image(new, "v1", skip_blobs=(layer,))
    result = run_sync(store, upstream)
    why = result.tags_failed["v1"]  # the tag fails (and keeps its old image); the sync reports it
    assert layer in why and "tag 'v1'" in why and "IncompleteRead" in why
    assert len(upstream.sleeps) == RetryPolicy().attempts - 1  # retried, then given up (once: one tag)
    assert snapshot(store, "app") == before
    assert not store.blob_has(Digest.parse(layer)) and not store.manifest_has(new.digest)
    assert store.check().ok


def test_blob_with_wrong_digest_fails_and_stores_nothing(store: Store, upstream: Upstream) -> None:
    img = build_image("app")
    layer, data = next(iter(img.blobs.items()))
    upstream.tags("v1")
    upstream.blob(layer, b"X" * len(data))
    upstream.image(img, "v1", skip_blobs=(layer,))
    msg = run_sync(store, upstream).tags_failed["v1"]
    assert "digest mismatch" in msg and layer in msg and f"{BASE}/v2/{NAME}/blobs/{layer}" in msg
    assert upstream.sleeps == []  # a digest mismatch is never retried
    # the repository this sync would have created does not exist, nothing was stored
    assert store.repository_find("app") is None
    assert not store.blob_has(Digest.parse(layer)) and not store.manifest_has(img.digest)
    assert store.check().ok


def test_wrong_digest_through_the_cli_exits_1(upstream: Upstream, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    img = build_image("app")
    layer, data = next(iter(img.blobs.items()))
    upstream.tags("v1")
    upstream.blob(layer, data[::-1])
    upstream.image(img, "v1", skip_blobs=(layer,))
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(tmp_path / "s"), "sync", "app", "--feed", BASE, "--upstream-name", NAME])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "\nerror: tag v1: fetching blob " in err and "digest mismatch" in err and "\nhint: " in err
    assert "downloading blobs: 0/" in err  # plain progress lines before the error
    store = SQLiteStore(tmp_path / "s")
    try:
        assert store.repository_list() == [] and store.check().ok
    finally:
        store.close()


@pytest.mark.parametrize("gone_at", ["get-by-tag", "head", "get"],
                         ids=["new-tag-deleted-before-get", "known-tag-deleted-before-head",
                              "known-tag-moved-then-deleted-before-get"])
def test_tag_deleted_between_listing_and_fetching(store: Store, upstream: Upstream, gone_at: str) -> None:
    """A new tag is resolved by GET, a tag the repository holds by HEAD (then GET by
    digest when it moved): a 404 at any of them drops the tag, and the rest syncs."""
    kept, gone, old = build_image("kept"), build_image("gone"), build_image("old")
    upstream.tags("v1", "v2")
    upstream.image(kept, "v1")
    url = f"{BASE}/v2/{NAME}/manifests"
    not_found = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
    if gone_at == "get-by-tag":
        upstream.rsps.add(responses.GET, f"{url}/v2", status=404, json=not_found)
    else:  # the repository holds v2 (at another image): it is HEADed
        store.repository_create("app")
        store_image(store, old)
        store.version_commit("app", base=0, content=ContentSet(blobs=frozenset(map(Digest.parse, old.blobs)),
                                                               manifests=frozenset([old.digest])),
                             tags={"v2": TagEntry(old.digest, Origin.SYNC)}, operation="test")
    if gone_at == "head":  # (a GET confirms a HEAD 404: some registries 404 HEADs of manifests they have)
        upstream.rsps.add(responses.HEAD, f"{url}/v2", status=404)
        upstream.rsps.add(responses.GET, f"{url}/v2", status=404, json=not_found)
    elif gone_at == "get":
        headers = {"Docker-Content-Digest": str(gone.digest), "Content-Type": gone.manifest.media_type}
        upstream.rsps.add(responses.HEAD, f"{url}/v2", status=200, headers=headers)
        upstream.rsps.add(responses.GET, f"{url}/{gone.digest}", status=404, json=not_found)
    result = run_sync(store, upstream)
    tags = {n: e.digest for n, e in store.version_get("app").tags.items()}
    assert tags == {"v1": kept.digest} if gone_at == "get-by-tag" else {"v1": kept.digest, "v2": old.digest}
    assert result.tags_dropped == ("v2",)
    assert store.check().ok


def test_json_summary(upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = build_image("app")
    upstream.tags("v1", "latest")
    upstream.image(img, "v1", "latest")
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(tmp_path / "s"), "sync", "app", "--feed", BASE, "--upstream-name", NAME, "--json"])
    assert exited.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tags_added"] == ["latest", "v1"] and out["version"] == 1
    assert out["blobs_added"] == len(img.blobs) and out["manifests_added"] == 1
    assert out["bytes_downloaded"] == len(img.manifest.raw) + sum(map(len, img.blobs.values()))
    # ping, tag list, one GET per (new) tag, the blobs
    assert out["requests"] == 1 + 1 + 2 + len(img.blobs)


def test_a_client_that_cannot_be_opened_leaves_no_repository(store: Store) -> None:
    """The repository a sync creates is removed again whatever fails after its creation,
    opening the registry client included (a bad credentials file, a missing CA file)."""
    from reconciler.errors import ConfigError

    def refuse(config: RegistryConfig) -> UpstreamSource:
        raise ConfigError(f"registry {config.url}: auth_file not found")

    with pytest.raises(ConfigError):
        api.sync_repository(store, "app", feed=BASE, upstream_name=NAME, source_factory=refuse)
    assert store.repository_find("app") is None
