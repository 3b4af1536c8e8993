"""Push targets (issue 23) below the network: the push records of both store backends,
the plan's push actions from what a target answers (a fake ``PushTarget`` that counts its
requests), their text, Markdown and saved-plan forms, and the helpers naming a target."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.api import split_push_target
from reconciler.desired.model import DesiredState, PushSpec, RepositorySpec
from reconciler.errors import InvalidInput, NameInvalid, RegistryError
from reconciler.model import Descriptor, Digest, Index, Manifest
from reconciler.model.content import TagEntry
from reconciler.model.registry import RegistryConfig, registry_key
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.state import RepoState
from reconciler.plan.actions import Change, DeletePushedTag, PushTag
from reconciler.plan.model import Plan, RepoSummary
from reconciler.plan.observe import refresh
from reconciler.plan.pushes import plan_pushes
from reconciler.plan.render_markdown import render_markdown
from reconciler.plan.render_text import render_text
from reconciler.registry.protocol import RequestStats
from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import Image, build_image, build_multiarch, store_image

IMG = {n: build_image(f"push-plan-{n}") for n in ("a", "b")}
MULTI = build_multiarch("push-plan-multi")
HARBOR = RegistryConfig(url="https://harbor.example.com", name="harbor")


def test_push_records_round_trip_on_both_backends(store) -> None:  # type: ignore[no-untyped-def]
    a, b = IMG["a"].digest, IMG["b"].digest
    store.push_record("https://h", "team/app", "1.0", a)
    store.push_record("https://h", "team/app", "latest", a)
    store.push_record("https://h", "team/other", "1.0", b)
    store.push_record("https://elsewhere", "team/app", "1.0", b)
    store.push_record("https://h", "team/app", "latest", b)  # moved: one row per tag
    assert [(r.name, r.tag, r.digest) for r in store.pushed("https://h")] == [
        ("team/app", "1.0", a), ("team/app", "latest", b), ("team/other", "1.0", b)]
    assert [r.tag for r in store.pushed("https://h", "team/app")] == ["1.0", "latest"]
    store.push_record("https://h", "team/app", "1.0", None)  # deleted at the target
    assert [r.tag for r in store.pushed("https://h", "team/app")] == ["latest"]
    assert store.pushed("https://nobody") == []


class FakeTarget:
    """What a target registry holds: tag/digest -> digest, blobs; every request counted."""

    def __init__(self, tags: dict[str, Digest] | None = None, blobs: set[Digest] | None = None,
                 fail: bool = False) -> None:
        self.tags, self.blobs, self.fail = dict(tags or {}), set(blobs or ()), fail
        self.stats = RequestStats()
        self.base = HARBOR.url

    def manifest_exists(self, name: str, reference: str) -> Digest | None:
        self.stats.add("manifest_head")
        if self.fail:
            raise RegistryError("HEAD", f"{self.base}/v2/{name}/manifests/{reference}", 503, detail="down")
        return self.tags.get(reference)

    def blob_exists(self, name: str, digest: Digest) -> bool:
        self.stats.add("blob_head")
        return digest in self.blobs

    def push_target(self, spec: RegistryConfig) -> FakeTarget:
        return self

    def blob_known(self, name: str, digest: Digest) -> bool | None:
        return None

    # the push side: a plan never writes
    def blob_mount(self, name: str, digest: Digest, from_name: str) -> bool:
        raise AssertionError("the plan mounted a blob")

    def blob_upload(self, name: str, digest: Digest, chunks: Iterator[bytes], size: int | None) -> int:
        raise AssertionError("the plan uploaded a blob")

    def manifest_put(self, name: str, reference: str, manifest: Manifest | Index) -> Digest | None:
        raise AssertionError("the plan put a manifest")

    def manifest_read(self, name: str, reference: str) -> Manifest | Index | None:
        raise AssertionError("the plan read a manifest")

    def referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        raise AssertionError("the plan listed referrers")

    def tag_delete(self, name: str, tag: str) -> None:
        raise AssertionError("the plan deleted a tag")

    def close(self) -> None:
        pass


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store")
    yield s
    s.close()


def stored(store: SQLiteStore, tags: dict[str, Image]) -> None:
    store.repository_create("app")
    for image in tags.values():
        store_image(store, image)
    from reconciler.ops.graph import load_graph, with_closure

    graph = with_closure(store, load_graph(store, RepoState().content), [i.digest for i in tags.values()])
    content = graph.closure([i.digest for i in tags.values()])
    store.version_commit("app", base=0, content=content, tags={t: TagEntry(i.digest) for t, i in tags.items()},
                         operation="test")


def plan_for(store: SQLiteStore, target: FakeTarget, spec: PushSpec) -> Plan:
    desired = DesiredState(path=Path("repos.yaml"), digest="", version=1, registries={"harbor": HARBOR},
                           repositories={"app": RepositorySpec(id="app", push=(spec,))})
    observed = refresh(store, desired, None, upstreams=False)
    plan = Plan(desired_path="repos.yaml", desired_digest="", store_generation=observed.generation,
                repositories=(RepoSummary("app", "="),))
    return plan_pushes(plan, observed, desired, store, target)


def test_a_target_that_holds_every_tag_costs_one_head_per_tag_and_plans_nothing(sqlite: SQLiteStore) -> None:
    stored(sqlite, {"1.0": IMG["a"], "2.0": MULTI, "latest": MULTI})
    target = FakeTarget({"1.0": IMG["a"].digest, "2.0": MULTI.digest, "latest": MULTI.digest})
    plan = plan_for(sqlite, target, PushSpec(HARBOR, "team/app"))
    assert plan.actions == () and plan.errors == ()
    assert target.stats.counts == {"manifest_head": 3}
    assert render_text(plan, refresh_line=False).rstrip().endswith("No changes.")


def test_new_and_moved_tags_with_sizes_and_blobs_already_there(sqlite: SQLiteStore) -> None:
    stored(sqlite, {"1.0": IMG["a"], "2.0": MULTI, "latest": MULTI, "dev": IMG["b"]})
    config = IMG["a"].manifest.config.digest  # type: ignore[union-attr]
    target = FakeTarget({"latest": IMG["a"].digest}, blobs={config})
    plan = plan_for(sqlite, target, PushSpec(HARBOR, "team/app", TagFilter(("1.*", "2.*", "latest"))))
    by_tag = {a.tag: a for a in plan.actions if isinstance(a, PushTag)}
    assert sorted(by_tag) == ["1.0", "2.0", "latest"]  # dev is not selected
    a = by_tag["1.0"]
    blobs = {d.digest: d.size or 0 for d in IMG["a"].manifest.blobs()}
    assert (a.change, a.push_blobs, a.push_bytes, a.blobs_present) == (Change.CREATE, len(blobs),
                                                                       sum(blobs.values()), 1)
    moved = by_tag["latest"]
    assert (moved.change, moved.old_digest, moved.digest) == (Change.UPDATE, IMG["a"].digest, MULTI.digest)
    text = render_text(plan, refresh_line=False)
    assert f"+ push 1.0 -> harbor/team/app   {IMG['a'].digest.short()} ({len(blobs)} blobs, " in text
    assert ", 1 already there)" in text
    assert f"~ move latest -> harbor/team/app   {IMG['a'].digest.short()} -> {MULTI.digest.short()}" in text
    assert "Plan: 2 to add, 1 to change, 0 to remove." in text
    assert "push 2.0 -> harbor/team/app" in render_markdown(plan)
    # one HEAD per tag, then one per distinct blob of what must go
    every = {d.digest for i in (IMG["a"], MULTI) for m in i.all_manifests() if isinstance(m, Manifest)
             for d in m.blobs()}
    assert target.stats.counts == {"manifest_head": 3, "blob_head": len(every)}
    saved = Plan.loads(plan.dumps())
    assert saved.actions == plan.actions


def test_prune_deletes_only_recorded_tags_still_where_we_left_them(sqlite: SQLiteStore) -> None:
    stored(sqlite, {"1.1": IMG["a"]})
    key = registry_key(HARBOR.url)
    sqlite.push_record(key, "team/app", "1.0", IMG["a"].digest)     # ours, unchanged there: deleted
    sqlite.push_record(key, "team/app", "0.9", IMG["a"].digest)     # ours, moved by someone: kept, noted
    sqlite.push_record(key, "team/app", "0.8", IMG["a"].digest)     # ours, gone already: nothing
    target = FakeTarget({"1.1": IMG["a"].digest, "1.0": IMG["a"].digest, "0.9": IMG["b"].digest,
                         "theirs": IMG["a"].digest})
    plan = plan_for(sqlite, target, PushSpec(HARBOR, "team/app", prune=True))
    assert [(type(a), a.tag) for a in plan.actions] == [(DeletePushedTag, "1.0")]
    assert any("team/app:0.9 was pushed by us but moved at the target" in n for r in plan.repositories for n in r.notes)
    text = render_text(plan, refresh_line=False)
    assert f"- delete 1.0 at harbor/team/app   {IMG['a'].digest.short()}   pushed by us" in text
    unpruned = plan_for(sqlite, target, PushSpec(HARBOR, "team/app"))
    assert unpruned.actions == ()  # without prune nothing is deleted, records or not


def test_a_target_that_cannot_be_read_makes_the_plan_incomplete(sqlite: SQLiteStore) -> None:
    stored(sqlite, {"1.0": IMG["a"]})
    plan = plan_for(sqlite, FakeTarget(fail=True), PushSpec(HARBOR, "team/app"))
    assert plan.actions == ()
    assert [e.kind for e in plan.errors] == ["refresh"]
    assert plan.errors[0].message.startswith("push target harbor/team/app: HEAD https://harbor.example.com/")
    assert "No changes." not in render_text(plan, refresh_line=False)


def test_an_index_pushes_with_the_blobs_of_every_child() -> None:
    lookup = {m.digest: m for m in MULTI.all_manifests()}
    from reconciler.plan.pushes import closure_blobs

    blobs = closure_blobs(MULTI.digest, lookup.get)
    assert blobs is not None and set(blobs) == {Digest.parse(d) for d in MULTI.all_blobs()}
    assert isinstance(MULTI.manifest, Index)
    assert closure_blobs(IMG["b"].digest, lookup.get) is None  # not known yet (an upload not imported)


@pytest.mark.parametrize("url,key", [
    ("harbor.example.com", "https://harbor.example.com"),
    ("https://Harbor.example.com/", "https://harbor.example.com"),
    ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000"),
    ("https://user:pw@h.example.com", "https://h.example.com"),
])
def test_registry_key_names_one_registry_one_way(url: str, key: str) -> None:
    assert registry_key(url) == key


def test_push_target_is_a_registry_url_and_a_name() -> None:
    assert split_push_target("https://harbor.example.com/team/app") == ("https://harbor.example.com", "team/app")
    assert split_push_target("harbor.example.com:8443/a/b/c/") == ("https://harbor.example.com:8443", "a/b/c")
    assert split_push_target("http://127.0.0.1:5000/x") == ("http://127.0.0.1:5000", "x")
    with pytest.raises(InvalidInput):
        split_push_target("https://harbor.example.com")
    with pytest.raises(NameInvalid):
        split_push_target("https://harbor.example.com/Team/App")


def test_push_spec_label_is_the_registry_key_and_name() -> None:
    spec = PushSpec(HARBOR, "team/app")
    assert spec.label == "harbor/team/app"
    assert dataclasses.replace(spec, registry=RegistryConfig(url="https://x.example")).label == \
        "https://x.example/team/app"


def test_an_index_held_as_a_platform_subset_is_not_pushed_and_the_plan_says_why(sqlite: SQLiteStore) -> None:
    """The target would hold an index whose other platforms are missing (distribution and
    Harbor refuse it; a lenient registry would keep an incomplete image)."""
    amd64, *others = MULTI.children
    sqlite.repository_create("app")
    store_image(sqlite, IMG["a"])
    store_image(sqlite, amd64)
    sqlite.manifest_put(MULTI.manifest)
    content = dataclasses.replace(RepoState().content, manifests=frozenset({IMG["a"].digest, amd64.digest}),
                                  indexes=frozenset({MULTI.digest}),
                                  blobs=frozenset(Digest.parse(d) for i in (IMG["a"], amd64) for d in i.all_blobs()))
    sqlite.version_commit("app", base=0, content=content, operation="test", absent=[o.digest for o in others],
                          tags={"1.0": TagEntry(IMG["a"].digest), "2.0": TagEntry(MULTI.digest)})
    plan = plan_for(sqlite, FakeTarget(), PushSpec(HARBOR, "team/app"))
    assert [(type(a), a.tag) for a in plan.actions if isinstance(a, PushTag)] == [(PushTag, "1.0")]
    assert len(plan.actions) == 1
    [summary] = plan.repositories
    assert summary.notes == ("harbor/team/app:2.0 not pushed: its index lists 2 manifests this repository does "
                             "not hold (a platform subset); the target would hold an incomplete image",)


def test_tag_heads_asked_early_are_not_asked_again_and_a_failure_early_is_asked_again(
        sqlite: SQLiteStore) -> None:
    """``make_plan`` sends the targets' tag HEADs while the upstreams are refreshed
    (``EarlyHeads``); the plan then asks only what it lacks, and counts them all."""
    from reconciler.plan.push_heads import EarlyHeads

    stored(sqlite, {"1.0": IMG["a"], "2.0": MULTI})
    spec = PushSpec(HARBOR, "team/app")
    desired = DesiredState(path=Path("repos.yaml"), digest="", version=1, registries={"harbor": HARBOR},
                           repositories={"app": RepositorySpec(id="app", push=(spec,))})
    target = FakeTarget({"1.0": IMG["a"].digest, "2.0": MULTI.digest})
    early = EarlyHeads(sqlite, desired, target)
    observed = refresh(sqlite, desired, None, upstreams=False)
    plan = Plan(desired_path="repos.yaml", desired_digest="", store_generation=observed.generation,
                repositories=(RepoSummary("app", "="),))
    planned = plan_pushes(plan, observed, desired, sqlite, target, early=early)
    assert planned.actions == () and target.stats.counts == {"manifest_head": 2}
    assert planned.refresh.requests == 2

    down = FakeTarget(fail=True)
    planned = plan_pushes(plan, observed, desired, sqlite, down, early=EarlyHeads(sqlite, desired, down))
    assert [e.kind for e in planned.errors] == ["refresh"] and "down" in planned.errors[0].message
