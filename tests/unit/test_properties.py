"""Property-based tests (hypothesis): for any sequence of upload, tag, copy, remove, sync
(against an in-process fake upstream whose tags move and vanish), gc, version pruning
(retention) and publish operations, every repository version is complete and every stored file hashes to its
digest.

"Complete" is checked here from the parsed manifests, independently of the store's own
reference table: every tag's target is in the version; every image manifest's config and
layers (except foreign ones) are in it; every index's children are in it. ``store check``
(which re-hashes every file and walks the recorded references) must be clean too. An
operation the rules refuse (tagging a digest the repository lacks, removing a manifest
an index still lists, copying a tag that is not there) raises the project's error and
changes no repository.

Deterministic and bounded for CI: ``derandomize=True`` (the same examples every run),
60 examples of at most 12 operations, no deadline, no example database written.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import api
from reconciler.apply.content_commands import copy_command as copy
from reconciler.apply.content_commands import remove_command as remove
from reconciler.apply.content_commands import tag_command as tag
from reconciler.apply.content_commands import upload_command as upload
from reconciler.errors import ReconcilerError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import ContentSet
from reconciler.ops.retention import prune_versions
from reconciler.store.sqlite import SQLiteStore
from tests.support import archives as ar
from tests.support import imagegen as ig
from tests.support.fakeupstream import FakeUpstream

settings.register_profile("ci", derandomize=True, max_examples=60, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CI = settings.get_profile("ci")

REPOS = ["r1", "r2", "r3"]  # r1 starts synced, r2 uploaded, r3 missing
TAGS = ["latest", "v1", "nested"]
UPSTREAM = "lib/app"
BASE = (b"common base layer",)

# a small world of content, built once: images sharing a base layer, an OCI image, a
# Docker manifest list and an OCI index whose children share layers, and an index of indexes
IMAGES: dict[str, ig.Image] = {
    "a": ig.build_image("a", shared=BASE),
    "b": ig.build_image("b", shared=BASE),
    "oci": ig.build_image("oci", oci=True, shared=BASE),
    "list": ig.build_multiarch("list"),
    "index": ig.build_multiarch("index", oci=True),
}
IMAGES["nested"] = ig.build_index([IMAGES["index"], IMAGES["oci"]], oci=True)
DIGESTS = sorted({m.digest for img in IMAGES.values() for m in img.all_manifests()}, key=str)


def _files(root: Path) -> list[Path]:
    """Upload files: skopeo dir: tars, an OCI layout with a nested index, an index JSON
    whose children must already be in the repository, and a docker save tarball."""
    files = [
        ar.skopeo_dir_tar(root / "a.tar", IMAGES["a"]),
        ar.skopeo_dir_tar(root / "b.tar", IMAGES["b"]),
        ar.write_tar(root / "layout.tar", ar.oci_layout_files([(IMAGES["nested"], "nested"), (IMAGES["oci"], None)])),
        ar.write_tar(root / "list-layout.tar", ar.oci_layout_files([(IMAGES["list"], "multi")])),
        root / "index.json",
        ar.docker_save_tar(root / "save.tar", [(ig.build_image("saved"), ["x/saved:v1"])]),
    ]
    files[4].write_bytes(IMAGES["index"].manifest.raw)
    return files


@dataclass
class World:
    store: SQLiteStore
    upstream: FakeUpstream
    files: list[Path]


@contextmanager
def world() -> Iterator[World]:
    with tempfile.TemporaryDirectory(prefix="props-") as tmp:
        root = Path(tmp)
        store = SQLiteStore(root / "store", durable=False)
        upstream = FakeUpstream()
        upstream.push(UPSTREAM, IMAGES["a"], "v1")
        upstream.push(UPSTREAM, IMAGES["list"], "latest")
        w = World(store, upstream, FILES)
        try:
            # start from content, so that tag, copy and remove have something to act on
            apply_op(w, ("sync", "r1", False))
            apply_op(w, ("upload", "r2", 2, None))
            yield w
        finally:
            store.close()


_FILES_DIR = tempfile.mkdtemp(prefix="props-files-")
atexit.register(shutil.rmtree, _FILES_DIR, True)
FILES = _files(Path(_FILES_DIR))


# -- operations ---------------------------------------------------------------------------
repo = st.sampled_from(REPOS)
names = st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True)
digest_names = st.lists(st.sampled_from([str(d) for d in DIGESTS]), min_size=1, max_size=2, unique=True)

held = st.sampled_from(["r1", "r2", "r1", "r2", "r3"])  # mostly repositories with content
TAG_OP = st.tuples(st.just("tag"), held, st.sampled_from(TAGS), st.sampled_from(DIGESTS))
pair = st.permutations(REPOS).map(lambda p: p[:2])  # two different repositories
COPY_OP = st.builds(lambda p, kind, what: ("copy", p[0], p[1], kind, what), pair,
                    st.sampled_from(["tag", "manifest", "index"]), st.one_of(st.just("all"), names, digest_names))
REMOVE_OP = st.tuples(st.just("remove"), held, st.sampled_from(["tag", "tag", "manifest", "index"]),
                      st.one_of(names, names, digest_names))
OPS = st.one_of(
    st.tuples(st.just("upload"), repo, st.integers(0, len(FILES) - 1), st.sampled_from([None, *TAGS])),
    TAG_OP, TAG_OP, COPY_OP, COPY_OP, REMOVE_OP, REMOVE_OP,
    st.tuples(st.just("sync"), repo, st.booleans()),
    st.tuples(st.just("upstream-push"), st.sampled_from(sorted(IMAGES)), st.sampled_from(TAGS)),
    st.tuples(st.just("upstream-delete"), st.sampled_from(TAGS)),
    st.tuples(st.just("gc")),
    st.tuples(st.just("prune-versions"), held, st.integers(1, 3)),
)


def apply_op(w: World, op: tuple[Any, ...]) -> None:
    kind, *args = op
    s = w.store
    if kind == "upload":
        upload(s, args[0], w.files[args[1]], tag=args[2])
    elif kind == "tag":
        tag(s, args[0], args[1], args[2])
    elif kind == "copy":
        copy(s, source=args[0], target=args[1], kind=args[2], names=args[3])
    elif kind == "remove":
        remove(s, args[0], args[1], args[2])
    elif kind == "sync":
        api.sync_repository(s, args[0], feed=w.upstream.config.url, upstream_name=UPSTREAM, mirror=args[1],
                            jobs=2, source_factory=lambda _config: w.upstream)
    elif kind == "upstream-push":
        w.upstream.push(UPSTREAM, IMAGES[args[0]], args[1])
    elif kind == "upstream-delete":
        w.upstream.repos[UPSTREAM].tags.pop(args[0], None)
    elif kind == "gc":
        s.gc()
    elif kind == "prune-versions":
        with s.lock():
            prune_versions(s, args[0], args[1])


def snapshot(store: SQLiteStore) -> dict[str, tuple[int, dict[str, Digest], ContentSet]]:
    out = {}
    for r in store.repository_list():
        v = store.version_get(r.id)
        out[r.id] = (v.number, {n: e.digest for n, e in v.tags.items()}, v.content)
    return out


def incomplete(store: SQLiteStore) -> list[str]:
    """Every dangling reference in every version of every repository, from parsed manifests."""
    problems: list[str] = []
    for r in store.repository_list():
        for n in [v.number for v in store.version_list(r.id)]:  # the versions retention left
            v = store.version_get(r.id, n)
            held = v.content.manifests | v.content.indexes
            where = f"{r.id}@{n}"
            problems += [f"{where}: tag {t} -> {e.digest} not held" for t, e in v.tags.items() if e.digest not in held]
            for d in held:
                m = store.manifest_get(d)
                if isinstance(m, Index):
                    problems += [f"{where}: index {d} child {c} not held" for c in m.children() if c not in held]
                else:
                    assert isinstance(m, Manifest)
                    problems += [f"{where}: manifest {d} blob {b.digest} not held"
                                 for b in m.blobs() if b.digest not in v.content.blobs]
                    problems += [f"{where}: blob {b.digest} not in the store"
                                 for b in m.blobs() if not store.blob_has(b.digest)]
    return problems


@settings(CI)
@given(ops=st.lists(OPS, min_size=1, max_size=12))
def test_every_version_stays_complete_and_every_file_verifies(ops: list[tuple[Any, ...]]) -> None:
    with world() as w:
        for op in ops:
            before = snapshot(w.store)
            try:
                apply_op(w, op)
            except ReconcilerError:
                # a refused operation changes no repository (a sync that created one removes it)
                assert snapshot(w.store) == before, op
            assert incomplete(w.store) == [], op
        report = w.store.check()
        assert report.ok, [p.to_json() for p in report.problems]
        # gc keeps everything a version references, so the store stays complete after it
        w.store.gc()
        assert w.store.check().ok and incomplete(w.store) == []


def test_the_profile_is_deterministic_and_bounded() -> None:
    """CI relies on these: the same examples every run, a fixed number of them."""
    assert CI.derandomize and CI.max_examples == 60 and CI.deadline is None and CI.database is None
