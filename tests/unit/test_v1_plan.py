"""The v1 part of the pure diff (v1 uploads, v1 sync), its rendering and JSON round trip,
the v1 client's parsing of forms our own server never sends (the list form of tags,
abbreviated ids: ``responses``), and the migration of a store made before v1."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
import responses

from reconciler.desired.model import Upload
from reconciler.errors import RegistryError
from reconciler.model.content import V1Content
from reconciler.model.registry import RegistryConfig
from reconciler.plan.actions import Op, V1Upload
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from reconciler.plan.observed import Observed, V1UploadInfo, V1Upstream
from reconciler.plan.render_text import render_text
from reconciler.registry.v1client import V1Client
from tests.support.narrow import narrow
from tests.support.planworld import RepositorySpec, desired, observed, repo, state, synced

A, B, C = "a" * 64, "b" * 64, "c" * 64
FILE = Path("/work/tutorial.tar")


def _observed(v1: V1Content | None, *, upload: V1UploadInfo | None = None, upstream: V1Upstream | None = None) -> Observed:
    base = observed({"r": repo("r", state({}))})
    return dataclasses.replace(
        base, v1={"r": v1} if v1 is not None else {},
        v1_uploads={("r", str(FILE)): upload} if upload else {},
        v1_upstreams={"r": upstream} if upstream else {})


UPLOAD = V1UploadInfo(str(FILE), "sha256:" + "f" * 64, (B, C), {"latest": C})
V1_SPEC = RepositorySpec(id="r", uploads=(Upload(FILE, v1=True, mask_id=A),))


@pytest.mark.parametrize("have, expect", [
    (V1Content(), [("+", {"v1_images": 2, "v1_tags": 1})]),
    (V1Content(frozenset({B, C}), {"latest": B}), [("~", {"v1_tags": 1})]),
    (V1Content(frozenset({B, C}), {"latest": C}, frozenset({A})), []),
], ids=["new", "tag-moved-back", "in-place"])
def test_v1_upload_is_planned_only_when_it_changes_something(have: V1Content,
                                                              expect: list[tuple[str, dict[str, int]]]) -> None:
    plan = diff(desired(V1_SPEC), _observed(have, upload=UPLOAD))
    got = [(a.change.value, dict(a.adds)) for a in plan.actions if a.op is Op.V1_UPLOAD]
    assert got == expect
    if expect:
        a = narrow(V1Upload, next(a for a in plan.actions if a.op is Op.V1_UPLOAD))
        assert (a.mask_id, dict(a.v1_tags), a.file_digest) == (A, {"latest": C}, UPLOAD.file_digest)


@pytest.mark.parametrize("have, upstream, expect", [
    (V1Content(), {"latest": C}, ("+", "new upstream tag")),
    (V1Content(frozenset({B}), {"latest": B}), {"latest": C}, ("~", "tag moved upstream")),
    (V1Content(frozenset({C}), {"latest": C, "old": C}), {"latest": C}, None),
], ids=["first", "moved", "additive-no-change"])
def test_v1_sync_is_planned_from_the_upstream_tags(have: V1Content, upstream: dict[str, str],
                                                   expect: tuple[str, str] | None) -> None:
    spec = synced("r", enable_v1=True)
    plan = diff(desired(spec), _observed(have, upstream=V1Upstream("lib/r", upstream)))
    got = [(a.change.value, a.reason) for a in plan.actions if a.op is Op.V1_SYNC]
    assert got == ([expect] if expect else [])


def test_v1_refresh_failure_is_the_repository_error() -> None:
    plan = diff(desired(synced("r", enable_v1=True)),
                _observed(V1Content(), upstream=V1Upstream("lib/r", error="GET ...: HTTP 500")))
    assert any("v1 tags of lib/r failed" in str(e) for e in plan.errors)


def test_v1_actions_render_and_round_trip_through_json() -> None:
    spec = dataclasses.replace(synced("r", enable_v1=True), uploads=V1_SPEC.uploads)
    # the upload already sets latest -> C, so the sync only adds 1.0
    upstream = V1Upstream("lib/r", {"latest": C, "1.0": B})
    plan = diff(desired(spec), _observed(V1Content(), upload=UPLOAD, upstream=upstream))
    text = render_text(plan)
    assert "+ v1 upload tutorial.tar masking aaaaaaaaaaaa   declared in repos.yaml; 2 v1 images, 1 v1 tag" in text
    assert "v1 sync lib/r (2 v1 tags)   new upstream tag; 1 v1 tag" in text
    again = Plan.loads(plan.dumps(), where="test")
    assert again.to_json() == plan.to_json()
    assert again.digest() == plan.digest()


def _client() -> V1Client:
    return V1Client(RegistryConfig(url="http://old.example"))


@responses.activate
def test_v1_client_reads_the_list_form_of_tags_and_expands_abbreviated_ids() -> None:
    responses.get("http://old.example/v1/repositories/busybox/images", json=[{"id": A}, {"id": B}],
                  headers={"X-Docker-Token": "signature=x"})
    responses.get("http://old.example/v1/repositories/busybox/tags",
                  json=[{"name": "latest", "layer": "bbbbbbbb"}, {"name": "old", "layer": A}])
    client = _client()
    try:
        assert client.tags("busybox") == {"latest": B, "old": A}
        responses.get(f"http://old.example/v1/images/{B}/ancestry", json=[B, A])
        assert client.ancestry(B) == [B, A]
        assert responses.calls[-1].request.headers["Authorization"] == "Token signature=x"
    finally:
        client.close()


@responses.activate
@pytest.mark.parametrize("body, message", [
    ({"latest": "ab"}, "not one image"),
], ids=["ambiguous-or-unknown-abbreviation"])
def test_v1_client_refuses_tags_it_cannot_resolve(body: object, message: str) -> None:
    responses.get("http://old.example/v1/repositories/busybox/images", json=[{"id": A}])
    responses.get("http://old.example/v1/repositories/busybox/tags", json=body)
    client = _client()
    try:
        with pytest.raises(RegistryError, match=message):
            client.tags("busybox")
    finally:
        client.close()


@responses.activate
def test_v1_client_refuses_an_ancestry_that_does_not_start_with_the_image() -> None:
    responses.get(f"http://old.example/v1/images/{B}/ancestry", json=[A, B])
    client = _client()
    try:
        with pytest.raises(RegistryError, match="ancestry"):
            client.ancestry(B)
    finally:
        client.close()


def test_a_store_made_before_v1_gets_the_v1_tables(tmp_path: Path) -> None:
    from reconciler.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "s")
    store.repository_create("old")
    store.close()
    with sqlite3.connect(tmp_path / "s" / "store.db") as conn:  # as a store made before 0005 looked
        conn.executescript("DROP TABLE repo_v1_tags; DROP TABLE repo_v1_images; DROP TABLE v1_images; "
                           "DELETE FROM migrations WHERE name = '0005_v1_images';")
    conn.close()
    store = SQLiteStore(tmp_path / "s")
    try:
        assert store.v1_version_get("old") == V1Content()
        assert store.check().ok
    finally:
        store.close()


def test_a_saved_plan_is_stale_when_its_v1_upload_file_changed() -> None:
    from reconciler.apply.checks import check_fresh
    from reconciler.errors import StalePlan

    class Generation:
        def generation(self) -> int:
            return 7

    plan = diff(desired(V1_SPEC), _observed(V1Content(), upload=UPLOAD))
    # a stand-in store with the one method check_fresh reads
    check_fresh(plan, Generation(), desired(V1_SPEC), lambda p: UPLOAD.file_digest)  # type: ignore[arg-type]
    with pytest.raises(StalePlan, match="tutorial.tar changed"):
        check_fresh(plan, Generation(), desired(V1_SPEC), lambda p: "sha256:" + "0" * 64)  # type: ignore[arg-type]


@pytest.mark.parametrize("repo, expected", [
    ("    uploads: [{file: t.tar, mask_id: " + A + "}]\n",
     "repositories.r.uploads[0].mask_id: mask_id only applies to a v1 upload (v1: true)"),
    ("    uploads: [{file: t.tar, v1: true, tag: latest}]\n",
     "repositories.r.uploads[0].tag: a v1 upload takes its v1 tags from the tarball's repositories file; remove tag"),
    ("    enable_v1: true\n",
     "repositories.r.enable_v1: 'enable_v1' only applies to a repository with a feed (it filters or mirrors the sync)"),
    ("    uploads: [{file: t.tar, v1: true, mask_id: f38e47}]\n", "repositories.r.uploads[0].mask_id"),
], ids=["mask-without-v1", "tag-with-v1", "enable-v1-without-feed", "short-mask-id"])
def test_v1_keys_in_repos_yaml_are_checked(repo: str, expected: str, tmp_path: Path) -> None:
    from reconciler.desired import check_text

    (tmp_path / "t.tar").write_bytes(b"")
    text = "version: 1\nrepositories:\n  r:\n" + repo
    found = [f"{d.path}: {d.message}" for d in check_text(text.encode(), "r.yaml", tmp_path)]
    assert any(f.startswith(expected) for f in found), found


@pytest.mark.parametrize(("retries", "ok"), [(4, True), (0, False)], ids=["retried", "no-retries"])
def test_the_v1_client_retries_temporary_failures_as_configured(retries: int, ok: bool) -> None:
    """``retries`` (and ``timeout``) in repos.yaml apply to the v1 client as to v2: a 503
    with ``Retry-After: 0`` is retried, and not at all with ``retries: 0``."""
    from reconciler.model.registry import RegistryConfig
    from reconciler.registry.v1client import V1Client

    url = "http://v1feed.test/v1/repositories/app/images"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, url, status=503, headers={"Retry-After": "0"})
        rsps.add(responses.GET, url, json=[])
        rsps.add(responses.GET, "http://v1feed.test/v1/repositories/app/tags", json={})
        client = V1Client(RegistryConfig("http://v1feed.test", retries=retries, timeout=7.0))
        try:
            assert client.session.timeout == (7.0, 7.0)
            if ok:
                assert client.tags("app") == {}
            else:
                with pytest.raises(RegistryError) as err:
                    client.tags("app")
                assert err.value.status == 503
        finally:
            client.close()
