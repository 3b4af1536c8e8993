"""The test registries themselves: they start, accept pushes (anonymous, Basic, token),
log every request, and the paging proxy pages tag lists as the distribution spec says."""

from __future__ import annotations

import requests

from tests.support.imagegen import build_image, build_multiarch
from tests.support.pusher import delete_manifest, push_image
from tests.support.registry import RunningRegistry
from tests.support.tagproxy import TagPagingProxy


def test_anonymous_push_and_access_log(registry: RunningRegistry, repo_name: str) -> None:
    image = build_image(repo_name)
    push_image(registry.url, repo_name, image, tags=("v1", "latest"))
    mark = registry.mark()
    r = requests.get(f"{registry.url}/v2/{repo_name}/tags/list", timeout=10)
    assert sorted(r.json()["tags"]) == ["latest", "v1"]
    lines = registry.requests_since(mark)
    assert [(a.method, a.kind, a.status) for a in lines] == [("GET", "tags", 200)]


def test_index_push_and_delete(registry: RunningRegistry, repo_name: str) -> None:
    index = build_multiarch(repo_name, oci=True)
    push_image(registry.url, repo_name, index, tags=("multi",))
    accept = {"Accept": index.manifest.media_type}
    r = requests.get(f"{registry.url}/v2/{repo_name}/manifests/multi", headers=accept, timeout=10)
    assert r.content == index.manifest.raw
    delete_manifest(registry.url, repo_name, str(index.digest))
    r = requests.get(f"{registry.url}/v2/{repo_name}/manifests/multi", headers=accept, timeout=10)
    assert r.status_code == 404


def test_basic_auth_registry(basic_registry: RunningRegistry, repo_name: str) -> None:
    push_image(basic_registry.url, repo_name, build_image(repo_name), tags=("v1",), auth=basic_registry.credentials)
    assert requests.get(f"{basic_registry.url}/v2/{repo_name}/tags/list", timeout=10).status_code == 401
    r = requests.get(f"{basic_registry.url}/v2/{repo_name}/tags/list", auth=basic_registry.credentials, timeout=10)
    assert r.json()["tags"] == ["v1"]


def test_token_registry_push_needs_credentials(token_registry: RunningRegistry, repo_name: str) -> None:
    assert token_registry.token_server is not None
    push_image(token_registry.url, repo_name, build_image(repo_name), tags=("v1",), auth=token_registry.credentials)
    before = token_registry.token_server.count()
    # anonymous pull: challenge, anonymous token, then the tag list
    r = requests.get(f"{token_registry.url}/v2/{repo_name}/tags/list", timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer ")
    tok = requests.get(token_registry.token_server.realm,
                       params={"service": "reconciler-test-registry", "scope": f"repository:{repo_name}:pull"},
                       timeout=10).json()["token"]
    r = requests.get(f"{token_registry.url}/v2/{repo_name}/tags/list", headers={"Authorization": f"Bearer {tok}"},
                     timeout=10)
    assert r.json()["tags"] == ["v1"]
    assert token_registry.token_server.count() == before + 1


def test_paging_proxy_pages_tags(registry: RunningRegistry, paging_registry: TagPagingProxy, repo_name: str) -> None:
    image = build_image(repo_name)
    tags = [f"t{i:02d}" for i in range(7)]
    push_image(registry.url, repo_name, image, tags=tags)
    seen, url = [], f"{paging_registry.url}/v2/{repo_name}/tags/list?n=3"
    while url:
        r = requests.get(url, timeout=10)
        seen += r.json()["tags"]
        link = r.headers.get("Link")
        url = paging_registry.url + link.split(">")[0].lstrip("<") if link else ""
    assert seen == tags
