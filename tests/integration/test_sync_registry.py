"""Sync against a real CNCF distribution registry on loopback: every manifest kind, tag
pagination, shared layers, request counts of a no-change resync, upstream changes in
additive and mirror mode, Basic and token auth."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict, Unpack

import pytest

from reconciler import api
from reconciler.model import Digest
from reconciler.model.content import Origin
from reconciler.model.registry import RegistryConfig
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.sync import SyncResult
from reconciler.registry.client import RegistryClient
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store
from tests.support.cli import RunCli
from tests.support.imagegen import Image, build_image, build_multiarch
from tests.support.pusher import delete_manifest, push_image
from tests.support.registry import AccessLine, RunningRegistry
from tests.support.tagproxy import TagPagingProxy


class ClientOptions(TypedDict, total=False):
    """The ``RegistryClient`` options these tests set."""

    tag_page_size: int | None


class SyncOptions(TypedDict, total=False):
    """The ``api.sync_repository`` options these tests set."""

    tag_filter: TagFilter
    mirror: bool
    username_env: str | None
    password_env: str | None


class Clients:
    """A source factory that keeps the clients it made, so tests can read their counts."""

    def __init__(self, **kwargs: Unpack[ClientOptions]) -> None:
        self.kwargs = kwargs
        self.made: list[RegistryClient] = []

    def __call__(self, config: RegistryConfig) -> UpstreamSource:
        client = RegistryClient(config, **self.kwargs)
        self.made.append(client)
        return client

    @property
    def last(self) -> dict[str, int]:
        return dict(self.made[-1].stats.counts)


def do_sync(store: Store, feed: str, repo: str, name: str, clients: Callable[[RegistryConfig], UpstreamSource] | None = None,
            **kwargs: Unpack[SyncOptions]) -> SyncResult:
    return api.sync_repository(store, repo, feed=feed, upstream_name=name,
                               source_factory=clients or Clients(), **kwargs)


def tags_of(store: Store, repo: str) -> dict[str, Digest]:
    return {n: e.digest for n, e in store.version_get(repo).tags.items()}


def gets(lines: list[AccessLine], kind: str) -> list[AccessLine]:
    return [a for a in lines if a.method == "GET" and a.kind == kind]


def fill_all_kinds(registry: RunningRegistry, name: str) -> dict[str, Image]:
    images = {
        "schema2": build_image(f"{name}-s2"),
        "oci": build_image(f"{name}-oci", oci=True),
        "list": build_multiarch(f"{name}-list"),
        "index": build_multiarch(f"{name}-index", oci=True),
    }
    push_image(registry.url, name, images["schema2"], tags=("v1",))
    push_image(registry.url, name, images["oci"], tags=("v2", "latest", "stable", "2", "2.0"))
    push_image(registry.url, name, images["list"], tags=("list",))
    push_image(registry.url, name, images["index"], tags=("index",))
    return images


def test_sync_every_kind_through_paged_tag_list_then_no_change_resync(
        store: Store, registry: RunningRegistry, paging_registry: TagPagingProxy, repo_name: str) -> None:
    images = fill_all_kinds(registry, repo_name)
    want = {"v1": images["schema2"].digest, "list": images["list"].digest, "index": images["index"].digest,
            **{t: images["oci"].digest for t in ("v2", "latest", "stable", "2", "2.0")}}
    unique_blobs = {b for img in images.values() for b in img.all_blobs()}
    clients = Clients(tag_page_size=None)  # let the proxy page: 3 tags per page, 9 tags = 3 pages

    mark = registry.mark()
    first = do_sync(store, paging_registry.url, "kinds", repo_name, clients)
    assert tags_of(store, "kinds") == want
    assert {e.origin for e in store.version_get("kinds").tags.values()} == {Origin.SYNC}
    assert first.version == 1 and first.tags_added == tuple(sorted(want))
    content = store.version_get("kinds").content
    assert content.counts() == {"blobs": len(unique_blobs), "manifests": 8, "indexes": 2}
    assert first.manifests_added == 10 and first.blobs_added == len(unique_blobs)
    # every blob fetched exactly once, though the platforms of each index share a layer
    blob_gets = collections.Counter(a.path for a in gets(registry.requests_since(mark), "blob"))
    assert len(blob_gets) == len(unique_blobs) and set(blob_gets.values()) == {1}
    assert clients.last["tags"] == 3
    assert store.check().ok

    # Done when: a no-change resync = one tag list request per page, at most one HEAD per
    # selected tag, no manifest GET, no blob GET, no new version
    mark = registry.mark()
    second = do_sync(store, paging_registry.url, "kinds", repo_name, clients)
    counts = clients.last
    assert second.version is None and store.repository_get("kinds").latest_version == 1
    assert counts.get("tags") == 3
    assert counts.get("manifest_head", 0) <= len(want)
    assert "manifest_get" not in counts and "blob_get" not in counts
    upstream_lines = registry.requests_since(mark)
    assert gets(upstream_lines, "manifest") == [] and gets(upstream_lines, "blob") == []
    assert second.requests == sum(counts.values())


def test_blobs_shared_between_repositories_are_downloaded_once(store: Store, registry: RunningRegistry,
                                                               repo_name: str) -> None:
    base = (f"{repo_name} shared base".encode(),)
    one, two = build_image(f"{repo_name}-a", shared=base), build_image(f"{repo_name}-b", shared=base)
    push_image(registry.url, f"{repo_name}/one", one, tags=("latest",))
    push_image(registry.url, f"{repo_name}/two", two, tags=("latest",))
    mark = registry.mark()
    do_sync(store, registry.url, "one", f"{repo_name}/one")
    do_sync(store, registry.url, "two", f"{repo_name}/two")
    blob_paths = [a.path for a in gets(registry.requests_since(mark), "blob")]
    shared = set(one.blobs) & set(two.blobs)
    assert len(shared) == 1
    assert sum(1 for p in blob_paths if p.endswith(next(iter(shared)))) == 1
    assert len(blob_paths) == len(set(one.blobs) | set(two.blobs))
    assert store.check().ok


@pytest.mark.parametrize("mirror", [False, True], ids=["additive", "mirror"])
def test_upstream_changes_between_syncs(store: Store, registry: RunningRegistry, repo_name: str,
                                        mirror: bool) -> None:
    v1, v2, v3 = (build_image(f"{repo_name}-{t}") for t in ("v1", "v2", "v3"))
    for img, tag in ((v1, "v1"), (v2, "v2"), (v3, "v3")):
        push_image(registry.url, repo_name, img, tags=(tag,))
    do_sync(store, registry.url, "r", repo_name, mirror=mirror)
    # upstream: v2 moves, v3 is deleted, v4 is added
    v2b, v4 = build_image(f"{repo_name}-v2b"), build_image(f"{repo_name}-v4")
    push_image(registry.url, repo_name, v2b, tags=("v2",))
    delete_manifest(registry.url, repo_name, str(v3.digest))
    push_image(registry.url, repo_name, v4, tags=("v4",))
    result = do_sync(store, registry.url, "r", repo_name, mirror=mirror)
    assert result.tags_added == ("v4",) and result.tags_moved == ("v2",)
    version = store.version_get("r")
    if mirror:
        assert tags_of(store, "r") == {"v1": v1.digest, "v2": v2b.digest, "v4": v4.digest}
        assert result.tags_removed == ("v3",)
        # the deleted tag's and the moved tag's old images are gone with their blobs
        assert version.content.manifests == {v1.digest, v2b.digest, v4.digest}
        assert not set(map(Digest.parse, v3.blobs)) & version.content.blobs
    else:
        assert tags_of(store, "r") == {"v1": v1.digest, "v2": v2b.digest, "v3": v3.digest, "v4": v4.digest}
        assert result.tags_removed == ()
        assert version.content.manifests == {v1.digest, v2.digest, v2b.digest, v3.digest, v4.digest}
    assert store.check().ok


def test_tag_filter_and_stored_feed(store: Store, registry: RunningRegistry, repo_name: str) -> None:
    img = build_image(repo_name)
    push_image(registry.url, repo_name, img, tags=("1.36.0", "1.36.1", "1.36.1-uclibc", "1.35", "latest"))
    clients = Clients()
    do_sync(store, registry.url, "f", repo_name, clients,
            tag_filter=TagFilter(include=("latest", "1.36*"), exclude=("*-uclibc",)))
    assert set(tags_of(store, "f")) == {"latest", "1.36.0", "1.36.1"}
    # one request per selected tag: new tags are GOT by tag (no HEAD first)
    assert "manifest_head" not in clients.last and clients.last["manifest_get"] == 3
    repo = store.repository_get("f")
    assert (repo.feed, repo.upstream_name) == (registry.url, repo_name)
    # feed and upstream name come from the repository when not given
    again = api.sync_repository(store, "f", source_factory=clients)
    assert set(tags_of(store, "f")) == {"latest", "1.36.0", "1.36.1", "1.36.1-uclibc", "1.35"}
    assert again.tags_added == ("1.35", "1.36.1-uclibc")
    # the 3 tags it holds are HEADed (unchanged: nothing else), the 2 new ones GOT
    assert clients.last["manifest_head"] == 3 and clients.last["manifest_get"] == 2


def test_sync_with_basic_auth_through_the_cli(basic_registry: RunningRegistry, repo_name: str, run_cli: RunCli,
                                              tmp_path: Path) -> None:
    assert basic_registry.credentials is not None
    img = build_multiarch(repo_name, oci=True)
    push_image(basic_registry.url, repo_name, img, tags=("latest",), auth=basic_registry.credentials)
    user, password = basic_registry.credentials
    env = {"REG_USER": user, "REG_PASS": password}
    proc = run_cli("sync", "b", "--feed", basic_registry.url, "--upstream-name", repo_name,
                   "--username-env", "REG_USER", "--password-env", "REG_PASS", store=tmp_path / "s", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "new version 1" in proc.stdout and "1 added (latest)" in proc.stdout
    assert "downloading blobs:" in proc.stderr  # plain progress lines when not on a terminal
    shown = run_cli("repo", "show", "b", "--json", store=tmp_path / "s", check=True)
    assert f'"latest": "{img.digest}"' in shown.stdout
    # without credentials: a clear error naming the URL, exit 1, nothing changed
    proc = run_cli("sync", "b", store=tmp_path / "s")
    assert proc.returncode == 1
    assert "error:" in proc.stderr and basic_registry.url in proc.stderr
    proc = run_cli("sync", "b", "--username-env", "REG_USER", "--password-env", "REG_PASS", "--json",
                   store=tmp_path / "s", env=env)
    assert proc.returncode == 0 and '"changed": false' in proc.stdout


@pytest.mark.parametrize("with_credentials", [False, True], ids=["anonymous-token", "credentials-token"])
def test_sync_with_token_auth(store: Store, token_registry: RunningRegistry, repo_name: str,
                              with_credentials: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    assert token_registry.credentials is not None and token_registry.token_server is not None
    img = build_multiarch(repo_name)
    push_image(token_registry.url, repo_name, img, tags=("latest", "v1"), auth=token_registry.credentials)
    kwargs: SyncOptions = {}
    if with_credentials:
        monkeypatch.setenv("TOK_USER", token_registry.credentials[0])
        monkeypatch.setenv("TOK_PASS", token_registry.credentials[1])
        kwargs = {"username_env": "TOK_USER", "password_env": "TOK_PASS"}
    before = token_registry.token_server.count()
    result = do_sync(store, token_registry.url, "t", repo_name, **kwargs)
    assert tags_of(store, "t") == {"latest": img.digest, "v1": img.digest}
    assert result.blobs_added == len(img.all_blobs())
    # one token for the repository's pull scope, reused for every request
    assert token_registry.token_server.count() - before == 1
    assert store.check().ok
