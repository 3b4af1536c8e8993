"""Property (hypothesis): whatever the store holds, ONE apply makes it match repos.yaml.

Random sequences of repos.yaml edits (add, delete and rename repositories; move, swap and
release publish names; change tag filters, upload files, pins and copies) and upstream
changes (tags pushed, moved and deleted), each followed by one apply, with and without
``--prune-repositories``. After every apply:

- a new plan says ``No changes.`` (no action, no error);
- ``store check`` is clean;
- every publish name repos.yaml declares is served by the repository that declares it;
- no name was unserved, or served by a third repository, at any moment of the apply: a
  reader polls the publications (its own store connection, as a server worker has)
  while the apply runs, and every name that was served before and is declared after
  is in every poll, served by its old or its new repository.

A name held by a repository repos.yaml no longer declares (deleted or renamed without
``--prune-repositories``) makes the plan an error; the test then does what the error's
hint says (``unpublish --release``) and applies again, as a user would.

The plan and apply are the library's (refresh, diff, Runner), with an in-memory upstream.
Deterministic and bounded for CI: ``derandomize=True``, 20 examples of up to 6 applies.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply.runner import Runner
from reconciler.desired.loader import load_desired
from reconciler.desired.model import DesiredState
from reconciler.ops.publish import release
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from reconciler.plan.observe import refresh
from reconciler.plan.observed import Observed
from reconciler.store.sqlite import SQLiteStore
from tests.support import archives as ar
from tests.support import imagegen as ig
from tests.support.fakeupstream import FakeUpstream

PROFILE = settings(derandomize=True, max_examples=20, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

UPSTREAM = "lib/app"
NAMES = ["prod/app", "prod/web", "team/x"]
FILTERS = ["*", "v*", "lat*", "zz*"]  # "zz*" selects nothing: a warning, never a removal
TAGS = ["latest", "v1", "v2"]
IMAGES = {n: ig.build_image(f"conv-{n}", shared=(b"conv base",)) for n in ("a", "b", "c")}

_FILES_DIR = Path(tempfile.mkdtemp(prefix="conv-files-"))
atexit.register(shutil.rmtree, _FILES_DIR, True)
FILES = [ar.skopeo_dir_tar(_FILES_DIR / f"{n}.tar", IMAGES[n]) for n in ("a", "b")]


@dataclass
class Repo:
    kind: str                       # sync | upload | copy
    publish: str | None = None
    mirror: bool = False
    filter: str = "*"
    file: int = 0
    copy_from: str | None = None    # copy: all tags of a sync/upload repository
    pin_from: str | None = None     # copy: stable -> UPLOAD_REPO:latest


@dataclass
class Model:
    repos: dict[str, Repo] = field(default_factory=dict)
    counter: int = 0

    def new_id(self) -> str:
        self.counter += 1
        return f"r{self.counter}"

    def pick(self, i: int, *kinds: str) -> str | None:
        ids = sorted(r for r, spec in self.repos.items() if not kinds or spec.kind in kinds)
        return ids[i % len(ids)] if ids else None

    def give(self, repo_id: str, name: str | None) -> None:
        """``repo_id`` declares ``name``; whoever declared it before does not any more."""
        for spec in self.repos.values():
            if name is not None and spec.publish == name:
                spec.publish = None
        self.repos[repo_id].publish = name

    def drop(self, repo_id: str) -> None:
        del self.repos[repo_id]
        for spec in self.repos.values():
            if spec.copy_from == repo_id:
                spec.copy_from = None
            if spec.pin_from == repo_id:
                spec.pin_from = None

    def rename(self, old: str) -> None:
        new = self.new_id()
        self.repos[new] = self.repos.pop(old)
        for spec in self.repos.values():
            spec.copy_from = new if spec.copy_from == old else spec.copy_from
            spec.pin_from = new if spec.pin_from == old else spec.pin_from

    def yaml(self, url: str) -> str:
        out = f"version: 1\nregistries:\n  up: {{url: \"{url}\"}}\nrepositories:\n"
        for repo_id, r in sorted(self.repos.items()):
            lines = []
            if r.kind == "sync":
                lines += ["feed: up", f"upstream_name: {UPSTREAM}", f"tags: {{include: ['{r.filter}']}}",
                          f"mirror: {str(r.mirror).lower()}"]
            elif r.kind == "upload":
                lines += [f"uploads: [{{file: '{FILES[r.file]}', tag: latest}}]"]
            else:
                if r.copy_from:
                    lines += [f"copy: [{{from: {r.copy_from}, tags: all}}]"]
                if r.pin_from:
                    lines += [f"pins: {{stable: '{r.pin_from}:latest'}}"]
            if r.publish:
                lines += [f"publish: {r.publish}"]
            out += f"  {repo_id}:" + ("".join(f"\n    {line}" for line in lines) or " {}") + "\n"
        return out


def edit(m: Model, upstream: FakeUpstream, op: tuple[Any, ...]) -> None:
    kind, *a = op
    if kind == "add":
        repo_id = m.new_id()
        m.repos[repo_id] = Repo(a[0], mirror=a[2], file=a[3] % len(FILES))
        if a[0] == "copy":
            m.repos[repo_id].copy_from = m.pick(a[3], "sync", "upload")
        m.give(repo_id, None if a[1] is None else NAMES[a[1]])
    elif not m.repos:
        return
    elif kind == "delete":
        m.drop(m.pick(a[0]) or "")
    elif kind == "rename":
        m.rename(m.pick(a[0]) or "")
    elif kind == "move":
        m.give(m.pick(a[0]) or "", NAMES[a[1]])
    elif kind == "swap":
        one, two = m.pick(a[0]), m.pick(a[1])
        if one and two and one != two:
            m.repos[one].publish, m.repos[two].publish = m.repos[two].publish, m.repos[one].publish
    elif kind == "release":
        m.give(m.pick(a[0]) or "", None)
    elif kind == "filter":
        target = m.pick(a[0], "sync")
        if target:
            m.repos[target].filter = FILTERS[a[1]]
    elif kind == "file":
        target = m.pick(a[0], "upload")
        if target:
            m.repos[target].file = a[1] % len(FILES)
    elif kind == "copy":
        target, source = m.pick(a[0], "copy"), m.pick(a[1], "sync", "upload")
        if target:
            m.repos[target].copy_from = source
    elif kind == "pin":
        target, source = m.pick(a[0], "copy"), m.pick(a[1], "upload")
        if target:
            m.repos[target].pin_from = source


def upstream_edit(upstream: FakeUpstream, op: tuple[Any, ...]) -> None:
    kind, *a = op
    if kind == "push":
        upstream.push(UPSTREAM, IMAGES[a[0]], a[1])
    elif len(upstream.repos[UPSTREAM].tags) > 1:  # "untag": the upstream keeps one tag at least
        upstream.repos[UPSTREAM].tags.pop(a[0], None)


i = st.integers(0, 7)
EDITS = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(["sync", "upload", "copy"]), st.one_of(st.none(), st.integers(0, 2)),
              st.booleans(), i),
    st.tuples(st.just("delete"), i), st.tuples(st.just("rename"), i), st.tuples(st.just("rename"), i),
    st.tuples(st.just("move"), i, st.integers(0, 2)), st.tuples(st.just("move"), i, st.integers(0, 2)),
    st.tuples(st.just("swap"), i, i), st.tuples(st.just("swap"), i, i), st.tuples(st.just("release"), i),
    st.tuples(st.just("filter"), i, st.integers(0, len(FILTERS) - 1)), st.tuples(st.just("file"), i, i),
    st.tuples(st.just("copy"), i, i), st.tuples(st.just("pin"), i, i),
)
UPSTREAM_EDITS = st.one_of(st.tuples(st.just("push"), st.sampled_from(sorted(IMAGES)), st.sampled_from(TAGS)),
                           st.tuples(st.just("untag"), st.sampled_from(TAGS)))
STEP = st.tuples(st.lists(EDITS, min_size=1, max_size=3), st.lists(UPSTREAM_EDITS, max_size=2), st.booleans())


@dataclass
class World:
    root: Path
    store: SQLiteStore
    reader: SQLiteStore
    upstream: FakeUpstream
    model: Model


@contextmanager
def world() -> Iterator[World]:
    with tempfile.TemporaryDirectory(prefix="conv-") as tmp:
        root = Path(tmp)
        store = SQLiteStore(root / "store", durable=False)
        reader = SQLiteStore(root / "store", durable=False)  # what a server worker sees
        upstream = FakeUpstream()
        upstream.push(UPSTREAM, IMAGES["a"], "latest", "v1")
        m = Model()
        m.repos = {"s0": Repo("sync", publish="prod/app"), "u0": Repo("upload", publish="prod/web")}
        w = World(root, store, reader, upstream, m)
        try:
            yield w
        finally:
            reader.close()
            store.close()


def plan_of(w: World, prune: bool) -> tuple[Plan, DesiredState, Observed]:
    path = w.root / "repos.yaml"
    path.write_text(w.model.yaml(w.upstream.config.url))
    desired = load_desired(path)
    observed = refresh(w.store, desired, lambda _spec: w.upstream)
    return diff(desired, observed, prune_repositories=prune), desired, observed


def served(store: SQLiteStore) -> dict[str, str]:
    return {p.name: p.repo_id for p in store.publication_list()}


def apply_once(w: World, prune: bool) -> None:
    plan, desired, observed = plan_of(w, prune)
    if plan.errors:
        # only names held outside repos.yaml stop a plan here; do what the hint says
        assert {e.kind for e in plan.errors} == {"name"}, [str(e) for e in plan.errors]
        for holder in sorted({e.message.split("repository '")[1].split("'")[0] for e in plan.errors}):
            release(w.store, holder)
        plan, desired, observed = plan_of(w, prune)
        assert not plan.errors, [str(e) for e in plan.errors]
    before = served(w.store)
    declared = {r.publish: repo_id for repo_id, r in w.model.repos.items() if r.publish}
    polls: list[dict[str, str]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            polls.append(served(w.reader))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        result = Runner(plan, w.store, desired, sources=lambda _spec: w.upstream,
                        manifests=observed.manifests, parallel_repos=2).run()
    finally:
        done.set()
        poller.join()
    assert result.ok, [r.to_json() for r in result.results if r.status != "done"]
    polls.append(served(w.reader))
    for name, owner in declared.items():
        if name not in before:
            continue
        for seen in polls:
            assert seen.get(name) in (before[name], owner), (name, before[name], owner, seen)

    after, _, _ = plan_of(w, prune)
    assert not after.has_changes and not after.errors, [a.id for a in after.actions] + [str(e) for e in after.errors]
    report = w.store.check()
    assert report.ok, [p.to_json() for p in report.problems]
    now = served(w.store)
    assert {name: now.get(name) for name in declared} == declared


@PROFILE
@given(steps=st.lists(STEP, min_size=1, max_size=6))
def test_one_apply_converges_from_any_state_and_never_unserves_a_declared_name(steps: list[tuple[Any, ...]]) -> None:
    with world() as w:
        apply_once(w, False)
        for edits, upstream_edits, prune in steps:
            for op in edits:
                edit(w.model, w.upstream, op)
            for op in upstream_edits:
                upstream_edit(w.upstream, op)
            apply_once(w, prune)


def test_the_profile_is_deterministic_and_bounded() -> None:
    assert PROFILE.derandomize and PROFILE.max_examples == 20 and PROFILE.database is None
