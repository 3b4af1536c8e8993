"""``reconciler export --all -o BUNDLE [--since PREVIOUS]``: a store's published content
as one bundle file (the format: ``bundle/format.py``).

For each selected repository the published version is exported (the latest when it is
not published): its tags, publish name, protected flag and its whole content by digest
in ``bundle.json``, and the bytes of that content, exact, under ``blobs/``. With
``since`` the bundle is a delta: it lists the same, but carries only the content the
previous bundle (and its own base chain) did not list. The content moves through the
one transfer walk (``ops.transfer``) from the store into a ``LayoutSink``. The file is
written into a temporary file and renamed into place once complete
(``ops/formats/tarout.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from reconciler.bundle import format as bf
from reconciler.bundle.reader import read_manifest
from reconciler.errors import InvalidInput, RepositoryNotFound, StoreError
from reconciler.model import Digest
from reconciler.model.content import ContentSet
from reconciler.ops.formats.ocilayout import REF_NAME, descriptor, index_bytes, write_index
from reconciler.ops.formats.tarout import atomic_tar
from reconciler.ops.formats.tarsinks import LayoutSink
from reconciler.ops.transfer.adapters import StoreSource
from reconciler.ops.transfer.walk import TransferPolicy, transfer
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


def _entries(store: Store, repo_ids: Sequence[str] | None) -> tuple[dict[str, bf.RepoEntry], frozenset[Digest]]:
    """Each selected repository's entry, and the index children the versions lack on
    purpose (platform subsets: the bundle carries the index byte for byte, not them)."""
    repos = {r.id: r for r in store.repository_list()}
    wanted = list(repo_ids) if repo_ids else sorted(repos)
    unknown = [r for r in wanted if r not in repos]
    if unknown:
        raise RepositoryNotFound(f"no repository {', '.join(map(repr, unknown))} in the store at {store.location}",
                                 hint="see `reconciler repo list`")
    out = {}
    absent: set[Digest] = set()
    for rid in wanted:
        repo = repos[rid]
        number = repo.published_version if repo.published_version is not None else repo.latest_version
        version = store.version_get(rid, number)
        manifests = {d: store.manifest_raw(d)[0] for d in version.content.manifests | version.content.indexes}
        out[rid] = bf.RepoEntry(rid, number, {t: e.digest for t, e in version.tags.items()}, manifests,
                                version.content.blobs, repo.publish_name, repo.protected)
        absent |= version.absent
    return out, frozenset(absent)


def write_bundle(store: Store, output: str | Path, *, repo_ids: Sequence[str] | None = None,
                 since: str | Path | None = None) -> BundleResult:
    """Write the bundle (see the module doc); ``repo_ids``: a subset (default: all)."""
    entries, absent = _entries(store, repo_ids)
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
        # the content through the one transfer walk: every manifest of every version is
        # a root, and what the base lists is neither carried nor walked below
        sink = LayoutSink(w, held=known)
        content = ContentSet(frozenset(b for e in entries.values() for b in e.blobs), frozenset(manifests))
        source = StoreSource(store, content, {}, f"store {store.location}", absent - content.manifests)
        transfer(source, sink, sorted(manifests), policy=source.policy(TransferPolicy(jobs=1)))
        sink.commit()
        if sink.blobs != set(carried_blobs) or set(sink.manifests) != set(carried_manifests):
            raise StoreError(f"bundle {target}: the content walk wrote {len(sink.blobs)} blobs and "
                             f"{len(sink.manifests)} manifests, but bundle.json lists {len(carried_blobs)} and "
                             f"{len(carried_manifests)} as carried",
                             hint="the store's content is inconsistent: run `reconciler store check`")
        written = w.bytes
    log.info("bundle %s: %d repositories, %d blobs and %d manifests carried%s", target, len(entries),
             len(carried_blobs), len(carried_manifests), f", a delta against {base_digest}" if base_digest else "")
    return BundleResult(str(target), str(Digest.of(data)), len(entries), sum(len(e.tags) for e in entries.values()),
                        len(carried_blobs), len(carried_manifests), written,
                        str(base_digest) if base_digest else None)
