"""``reconciler export --all -o BUNDLE [--since PREVIOUS]``: a store's published content
as one bundle file (the format: ``bundle/format.py``).

For each selected repository the published version is exported (the latest when it is
not published): its tags, publish name, protected flag and its whole content by digest
in ``bundle.json``, and the bytes of that content, exact, under ``blobs/``. With
``since`` the bundle is a delta: it lists the same, but carries only the content the
previous bundle (and its own base chain) did not list. The file is written into a
temporary file and renamed into place once complete (``ops/formats/tarout.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from reconciler.bundle import format as bf
from reconciler.bundle.reader import read_manifest
from reconciler.errors import InvalidInput, RepositoryNotFound
from reconciler.model import Digest
from reconciler.ops.formats.ocilayout import REF_NAME, blob_path, descriptor, index_bytes, write_index
from reconciler.ops.formats.tarout import atomic_tar
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleResult:
    path: str
    digest: str
    repositories: int
    tags: int
    blobs: int          # carried (written into the file)
    manifests: int      # carried
    bytes: int
    base: str | None = None

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def _entries(store: Store, repo_ids: Sequence[str] | None) -> dict[str, bf.RepoEntry]:
    repos = {r.id: r for r in store.repository_list()}
    wanted = list(repo_ids) if repo_ids else sorted(repos)
    unknown = [r for r in wanted if r not in repos]
    if unknown:
        raise RepositoryNotFound(f"no repository {', '.join(map(repr, unknown))} in the store at {store.location}",
                                 hint="see `reconciler repo list`")
    out = {}
    for rid in wanted:
        repo = repos[rid]
        number = repo.published_version if repo.published_version is not None else repo.latest_version
        version = store.version_get(rid, number)
        manifests = {d: store.manifest_raw(d)[0] for d in version.content.manifests | version.content.indexes}
        out[rid] = bf.RepoEntry(rid, number, {t: e.digest for t, e in version.tags.items()}, manifests,
                                version.content.blobs, repo.publish_name, repo.protected)
    return out


def write_bundle(store: Store, output: str | Path, *, repo_ids: Sequence[str] | None = None,
                 since: str | Path | None = None) -> BundleResult:
    """Write the bundle (see the module doc); ``repo_ids``: a subset (default: all)."""
    entries = _entries(store, repo_ids)
    base: bf.BundleManifest | None = None
    base_digest: Digest | None = None
    if since is not None:
        base, base_digest = read_manifest(Path(since))
    known = base.all_content() if base is not None else set()
    manifests = {d: m for e in entries.values() for d, m in e.manifests.items()}
    carried_manifests = sorted((d for d in manifests if d not in known), key=str)
    carried_blobs = sorted({b for e in entries.values() for b in e.blobs} - known, key=str)
    sizes = {d: store.blob_size(d) for d in carried_blobs}
    descriptors = []
    for rid, entry in sorted(entries.items()):
        for tag, digest in sorted(entry.tags.items()):
            media_type, raw = store.manifest_raw(digest)
            descriptors.append(descriptor(media_type, digest, len(raw), {
                REF_NAME: f"{rid}:{tag}", bf.REPOSITORY_ANNOTATION: rid, bf.TAG_ANNOTATION: tag}))
    index = index_bytes(descriptors)
    manifest = bf.BundleManifest(
        created=datetime.now(UTC).isoformat(timespec="microseconds"), source_store=store.location,
        source_generation=store.generation(), index_digest=Digest.of(index), repositories=entries,
        base_digest=base_digest, base_created=base.created if base else None,
        carried={"blobs": len(carried_blobs), "manifests": len(carried_manifests), "bytes": sum(sizes.values())})
    data = manifest.dumps()
    target = Path(output)
    if since is not None and Path(since).resolve() == target.resolve():
        raise InvalidInput(f"--since {since} is the file being written", hint="write the new bundle to another file")
    with atomic_tar(target) as w:
        w.data(bf.MANIFEST, data)
        w.data(bf.CHECKSUM, bf.checksum_line(data))
        write_index(w, descriptors, index=index)
        for d in carried_blobs:
            w.stream(blob_path(d), sizes[d], store.blob_open(d))
        for d in carried_manifests:
            w.data(blob_path(d), store.manifest_raw(d)[1])
        written = w.bytes
    log.info("bundle %s: %d repositories, %d blobs and %d manifests carried%s", target, len(entries),
             len(carried_blobs), len(carried_manifests), f", a delta against {base_digest}" if base_digest else "")
    return BundleResult(str(target), str(Digest.of(data)), len(entries), sum(len(e.tags) for e in entries.values()),
                        len(carried_blobs), len(carried_manifests), written,
                        str(base_digest) if base_digest else None)
