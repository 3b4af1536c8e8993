"""``ops.transfer.transfer``, the one walk every content move uses, with small in-memory
sources and sinks: what it reads (only what the sink lacks), what it refuses (nested
indexes past the bound, a lying descriptor size, bytes of another digest) and how many
blobs it reads at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reconciler.errors import DigestMismatch, InvalidInput, NotFound
from reconciler.model import Digest, Index, Manifest
from reconciler.ops.parallel import ProgressEvent
from reconciler.ops.transfer.interface import Resolved
from reconciler.ops.transfer.walk import InFlight, TransferFailed, TransferPolicy, transfer
from tests.support.imagegen import Image, build_image, build_index, build_multiarch

T = TypeVar("T")
AnyManifest = Manifest | Index


class MemSource:
    """A ``ContentSource`` over dicts; records every read; ``gate`` holds blob reads."""

    trusted = False

    def __init__(self, *images: Image, blob_sizes: dict[Digest, int] | None = None) -> None:
        self.manifests: dict[Digest, AnyManifest] = {}
        self.blobs: dict[Digest, bytes] = {}
        for image in images:
            self.add(image)
        self.sizes = blob_sizes or {}
        self.reads: list[tuple[str, Digest]] = []
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.delay = 0.0

    def add(self, image: Image) -> None:
        for m in image.all_manifests():
            self.manifests[m.digest] = m
        for c in image.children:
            self.add(c)
        self.blobs.update({Digest.parse(d): b for d, b in image.all_blobs().items()})

    def tags(self) -> list[str]:
        return []

    def resolve(self, tag: str, *, read: bool = False) -> Resolved | None:
        return None

    def manifest(self, digest: Digest) -> AnyManifest:
        self.reads.append(("manifest", digest))
        if digest not in self.manifests:
            raise NotFound(f"no manifest {digest}")
        return self.manifests[digest]

    def blob_size(self, digest: Digest) -> int | None:
        return self.sizes.get(digest)

    def read_blob(self, digest: Digest, consume: Any) -> Any:
        with self.lock:
            self.reads.append(("blob", digest))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.delay)
            return consume(iter([self.blobs[digest]]))
        finally:
            with self.lock:
                self.running -= 1

    def location(self, kind: str, digest: Digest) -> str:
        return f"mem: {kind} {digest}"


class MemSink:
    """A ``ContentSink`` into dicts; ``commit`` moves what was put into ``held``."""

    def __init__(self, manifests: Iterable[AnyManifest] = (), blobs: Iterable[Digest] = ()) -> None:
        self.held_manifests = {m.digest: m for m in manifests}
        self.held_blobs = set(blobs)
        self.put_blobs: dict[Digest, bytes] = {}
        self.put_manifests: list[AnyManifest] = []

    def manifests_held(self, digests: Iterable[Digest]) -> set[Digest]:
        return {d for d in digests if d in self.held_manifests}

    def manifest_read(self, digest: Digest) -> AnyManifest | None:
        return self.held_manifests[digest]

    def blobs_missing(self, digests: Iterable[Digest]) -> set[Digest]:
        return {d for d in digests if d not in self.held_blobs and d not in self.put_blobs}

    def blob_put(self, digest: Digest, chunks: Iterator[bytes], *, size: int | None, where: str) -> int:
        data = b"".join(chunks)  # a VerifiedStream: raises at its end unless the bytes are right
        self.put_blobs[digest] = data
        return len(data)

    def manifests_put(self, manifests: Sequence[AnyManifest]) -> None:
        self.put_manifests += manifests

    def commit(self) -> None:
        pass


def chain(depth: int) -> tuple[Image, list[Image]]:
    """An image under ``depth`` nested indexes: (the top index, every level)."""
    levels: list[Image] = [build_image("deep", layers=1)]
    for _ in range(depth):
        levels.append(build_index([levels[-1]], oci=True))
    return levels[-1], levels


def test_moves_the_whole_closure_children_first() -> None:
    top = build_multiarch("app")
    source, sink = MemSource(top), MemSink()
    result = transfer(source, sink, [top.digest])
    assert set(sink.put_blobs) == {Digest.parse(d) for d in top.all_blobs()}
    assert [m.digest for m in sink.put_manifests][-1] == top.digest  # the index after its children
    assert set(result.manifests) == {m.digest for m in top.all_manifests()}
    assert result.blob_bytes == sum(len(b) for b in top.all_blobs().values())


def test_reads_only_what_the_sink_lacks() -> None:
    old = build_image("old", shared=(b"base",))
    new = build_image("new", shared=(b"base",))
    source = MemSource(old, new)
    # the sink holds the old image whole: its manifest and its blobs (the shared base too)
    sink = MemSink([old.manifest], [Digest.parse(d) for d in old.blobs])
    result = transfer(source, sink, [old.digest, new.digest])
    lacking = {Digest.parse(d) for d in new.blobs} - {Digest.parse(d) for d in old.blobs}
    assert {d for kind, d in source.reads if kind == "blob"} == lacking
    assert ("manifest", old.digest) not in source.reads  # read back from the sink instead
    assert [m.digest for m in sink.put_manifests] == [new.digest]
    assert result.blobs_put == len(lacking)


def test_index_depth_bound() -> None:
    top, _ = chain(3)
    transfer(MemSource(top), MemSink(), [top.digest], policy=TransferPolicy(max_depth=3))
    source, sink = MemSource(top), MemSink()
    with pytest.raises(TransferFailed, match="indexes nested more than 2 deep") as failed:
        transfer(source, sink, [top.digest], policy=TransferPolicy(max_depth=2))
    assert failed.value.kind == "manifest" and not sink.put_blobs and not sink.put_manifests


def test_depth_bound_with_keep_going_fails_that_root_only() -> None:
    deep, _ = chain(3)
    fine = build_image("fine")
    result = transfer(MemSource(deep, fine), MemSink(), [deep.digest, fine.digest],
                      policy=TransferPolicy(max_depth=2, keep_going=True, blobs=False))
    assert list(result.failed) == [deep.digest]
    assert "nested more than 2 deep" in result.failed[deep.digest].message
    assert fine.digest in result.manifests


def test_lying_descriptor_size_is_refused_before_anything_is_written() -> None:
    image = build_image("liar")
    layer = image.manifest.blobs()[-1]
    source = MemSource(image, blob_sizes={layer.digest: (layer.size or 0) + 1000})
    sink = MemSink()
    with pytest.raises(TransferFailed) as failed:
        transfer(source, sink, [image.digest])
    assert isinstance(failed.value.error, InvalidInput)
    assert f"is {(layer.size or 0) + 1000} bytes in the source, but manifest {image.digest} declares" in \
        failed.value.error.message
    assert not sink.put_blobs and not [r for r in source.reads if r[0] == "blob"]


def test_blob_of_another_digest_is_refused() -> None:
    image = build_image("swapped")
    layer = image.manifest.blobs()[-1]
    source = MemSource(image)
    good = source.blobs[layer.digest]
    source.blobs[layer.digest] = bytes(reversed(good))  # same size, other bytes
    with pytest.raises(TransferFailed) as failed:
        transfer(source, MemSink(), [image.digest])
    assert isinstance(failed.value.error, DigestMismatch) and failed.value.digest == layer.digest


def test_blob_longer_than_declared_is_refused() -> None:
    image = build_image("long")
    layer = image.manifest.blobs()[-1]
    source = MemSource(image)
    source.blobs[layer.digest] += b"more"
    with pytest.raises(TransferFailed, match="more than the announced"):
        transfer(source, MemSink(), [image.digest])


def test_manifest_of_another_digest_is_refused() -> None:
    image, other = build_image("asked"), build_image("other")
    source = MemSource(image)
    source.manifests[image.digest] = other.manifest  # the source answers with other bytes
    with pytest.raises(TransferFailed) as failed:
        transfer(source, MemSink(), [image.digest])
    assert isinstance(failed.value.error, DigestMismatch)


def test_missing_root_is_skipped_when_the_policy_says_so() -> None:
    image = build_image("here")
    gone = Digest.of(b"gone")
    result = transfer(MemSource(image), MemSink(), [image.digest, gone],
                      policy=TransferPolicy(skip_missing_roots=True))
    assert result.missing_roots == {gone}
    with pytest.raises(TransferFailed, match="no manifest"):
        transfer(MemSource(image), MemSink(), [image.digest, gone])


@pytest.mark.parametrize("jobs", [1, 3])
def test_parallel_reads_are_bounded_by_jobs(jobs: int) -> None:
    image = build_image("wide", layers=8)
    source = MemSource(image)
    source.delay = 0.05
    events: list[ProgressEvent] = []
    transfer(source, MemSink(), [image.digest], policy=TransferPolicy(jobs=jobs), progress=events.append)
    assert source.most == jobs
    blobs = [e for e in events if e.phase == "blobs"]
    assert blobs[-1].done == blobs[-1].total == 9  # 8 layers and the config


def test_shared_inflight_reads_a_blob_once() -> None:
    """Two transfers into one sink at once (apply's repositories sharing a base layer):
    the shared blob is read once."""
    a, b = build_image("a", shared=(b"base",)), build_image("b", shared=(b"base",))
    source, sink, inflight = MemSource(a, b), MemSink(), InFlight()
    source.delay = 0.05
    threads = [threading.Thread(target=transfer, args=(source, sink, [img.digest]), kwargs={"inflight": inflight})
               for img in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reads = [d for kind, d in source.reads if kind == "blob"]
    assert len(reads) == len(set(reads)) == len(set(a.blobs) | set(b.blobs))


def test_labels_name_the_root_of_a_failing_child() -> None:
    top = build_multiarch("named")
    source = MemSource(top)
    child = top.children[1].digest
    del source.manifests[child]
    with pytest.raises(TransferFailed) as failed:
        transfer(source, MemSink(), [top.digest], labels={top.digest: "v1"})
    assert (failed.value.digest, failed.value.label) == (child, "v1")


def test_foreign_layers_are_never_read() -> None:
    image = build_image("win", foreign=True)
    source = MemSource(image)
    result = transfer(source, MemSink(), [image.digest])
    assert result.foreign and not result.foreign & {d for _, d in source.reads}


def test_held_manifests_are_not_walked_without_descend_held() -> None:
    top = build_multiarch("held")
    source = MemSource(top)
    sink = MemSink([top.manifest])
    result = transfer(source, sink, [top.digest], policy=TransferPolicy(descend_held=False, blobs=False))
    assert source.reads == [] and result.held == {top.digest} and not result.manifests


@pytest.mark.parametrize("send_digest", [True, False])
def test_registry_source_resolves_and_lists_tags(send_digest: bool) -> None:
    """The registry adapter answers ``resolve`` from a HEAD, or (no digest header) from
    the manifest's own bytes, and moves an image into a sink."""
    from reconciler.ops.transfer.adapters import RegistrySource
    from tests.support.fakeupstream import FakeUpstream

    upstream = FakeUpstream(send_digest=send_digest)
    image = build_multiarch("reg")
    upstream.push("team/app", image, "v1", "v2")
    source = RegistrySource(upstream, "team/app")
    assert source.tags() == ["v1", "v2"]
    found = source.resolve("v1")
    assert found is not None and found.digest == image.digest
    assert (found.manifest is None) == send_digest  # without the header the bytes were read and hashed
    upstream.stats.counts.clear()
    read = source.resolve("v2", read=True)  # a new tag: one GET, its manifest handed on
    assert read is not None and read.manifest is not None and read.manifest.raw == image.manifest.raw
    assert upstream.stats.counts == {"manifest_get": 1}
    assert source.resolve("nope") is None and source.resolve("nope", read=True) is None
    sink = MemSink()
    transfer(source, sink, [image.digest])
    assert set(sink.put_blobs) == {Digest.parse(d) for d in image.all_blobs()}
    assert source.location("blob", image.digest).startswith("GET http://fake.invalid/v2/team/app/blobs/")


def test_file_source_is_an_upload_file_as_content(tmp_path: Path) -> None:
    """An upload file (an OCI layout here) as a source: its tags, its manifests, its blobs."""
    from reconciler.ops.formats.archive import open_archive
    from reconciler.ops.formats.filesource import FileSource
    from reconciler.ops.formats.upload_formats import read_oci_layout
    from tests.support.archives import oci_layout_dir

    image = build_image("file", oci=True)
    path = oci_layout_dir(tmp_path / "layout", [(image, "v1")])
    with open_archive(path) as archive:
        source = FileSource(read_oci_layout(archive), str(path))
        assert source.tags() == ["v1"]
        found = source.resolve("v1")
        assert found is not None and found.digest == image.digest
        sink = MemSink()
        transfer(source, sink, [image.digest])
        assert sink.put_blobs == {Digest.parse(d): b for d, b in image.blobs.items()}


def test_the_policy_platforms_follow_only_the_selected_children_and_keep_the_index() -> None:
    """Issue 18's filter in the walk: the index moves byte for byte, only the selected
    platform's manifest and blobs are read, and the result names what was left out."""
    from reconciler.model.platforms import PlatformFilter

    top = build_multiarch("plat")
    amd64, arm64, ppc = top.children
    source, sink = MemSource(top), MemSink()
    result = transfer(source, sink, [top.digest],
                      policy=TransferPolicy(platforms=PlatformFilter.parse(["linux/amd64"])))
    assert [m.digest for m in sink.put_manifests] == [amd64.digest, top.digest]
    assert sink.put_manifests[-1].raw == top.manifest.raw
    assert set(sink.put_blobs) == {Digest.parse(d) for d in amd64.blobs}
    assert result.left_out == {top.digest: frozenset({arm64.digest, ppc.digest})}
    assert result.skipped == {arm64.digest, ppc.digest}
    assert {d for kind, d in source.reads if kind == "manifest"} == {top.digest, amd64.digest}


def test_a_child_left_out_of_an_index_but_walked_another_way_is_not_skipped() -> None:
    """A tag pointing straight at the ppc64le image of an index mirrored for amd64: the
    image is moved, and not reported as left out (the version must not call it absent)."""
    from reconciler.model.platforms import PlatformFilter

    top = build_multiarch("twice")
    ppc = top.children[2]
    result = transfer(MemSource(top), MemSink(), [top.digest, ppc.digest],
                      policy=TransferPolicy(platforms=PlatformFilter.parse(["linux/amd64"])))
    assert ppc.digest in result.left_out[top.digest]
    assert ppc.digest in result.manifests and result.skipped == {top.children[1].digest}


def test_absent_children_of_a_stored_subset_are_not_read() -> None:
    """A stored platform subset (``TransferPolicy.absent``): the index is moved as it is,
    and the children the source lacks on purpose are never asked for."""
    top = build_multiarch("subset")
    amd64, arm64, ppc = top.children
    source = MemSource(top)
    for gone in (arm64, ppc):
        del source.manifests[gone.digest]
    sink = MemSink()
    result = transfer(source, sink, [top.digest], policy=TransferPolicy(absent=frozenset({arm64.digest, ppc.digest})))
    assert [m.digest for m in sink.put_manifests] == [amd64.digest, top.digest]
    assert result.skipped == {arm64.digest, ppc.digest}
    with pytest.raises(TransferFailed):  # without the absent set, the gap is an error
        transfer(source, MemSink(), [top.digest])
