"""Refresh over a real SQLite store with a fake upstream: what it GETs to size the download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reconciler.desired.model import Upload
from reconciler.model import Digest, Index, Manifest
from reconciler.ops.refresh import UpstreamView
from reconciler.plan.observe import refresh
from reconciler.plan.observed import UploadInfo
from reconciler.store.protocol import Store
from tests.support.fakeupstream import NoUpstream
from tests.support.imagegen import build_multiarch
from tests.support.planworld import RepositorySpec, desired, synced


class Upstream(NoUpstream):
    """Serves manifests by digest and records which it was asked for."""

    def __init__(self, manifests: list[Manifest | Index]) -> None:
        super().__init__()
        self.manifests = {str(m.digest): m for m in manifests}
        self.asked: list[str] = []

    def manifest_get(self, name: str, reference: str) -> Manifest | Index:
        self.asked.append(reference)
        return self.manifests[reference]


def test_children_of_an_index_the_resolver_already_got_are_fetched_once(store: Store) -> None:
    # a registry without Docker-Content-Digest: resolving the tag GOT the index itself
    img = build_multiarch("web")
    assert isinstance(img.manifest, Index)
    upstream = Upstream([c.manifest for c in img.children])

    def resolver(source: object, spec: object, jobs: int, known: object) -> UpstreamView:
        return UpstreamView("web", {"latest": img.digest}, manifests={img.digest: img.manifest}, listed=1)

    obs = refresh(store, desired(synced("web")), lambda _: upstream, resolver=resolver)
    children = sorted(str(c.digest) for c in img.children)
    assert sorted(upstream.asked) == children  # each child once; the index not again
    assert obs.missing_manifests == {img.digest, *(c.digest for c in img.children)}
    assert set(obs.missing_blobs) == {Digest.parse(b) for b in img.all_blobs()}


def test_a_file_several_repositories_upload_is_hashed_and_read_once(store: Store, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.plan import uploads as uploads_mod

    file = tmp_path / "image.tar"
    file.write_bytes(b"not inspected for real")
    calls: list[str] = []

    def inspect(path: Path, file_digest: str) -> tuple[UploadInfo, list[Manifest | Index]]:
        calls.append(str(path))
        return UploadInfo(str(path), file_digest), []

    monkeypatch.setattr(uploads_mod, "upload_info", inspect)  # refresh imports it when needed
    specs = [RepositorySpec(r, uploads=(Upload(file, tag="latest"),)) for r in ("a", "b")]
    obs = refresh(store, desired(*specs), None, upstreams=False)
    assert calls == [str(file)]
    assert obs.uploads[("a", str(file))] == obs.uploads[("b", str(file))]
    assert obs.uploads[("a", str(file))].file_digest == "sha256:" + hashlib.sha256(file.read_bytes()).hexdigest()
