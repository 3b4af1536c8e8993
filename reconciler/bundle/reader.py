"""A bundle as a feed: ``BundleSource`` reads bundles through the interface sync and the
plan's refresh use for an upstream registry (``registry.protocol.UpstreamSource``), so a
repository with ``feed: bundle:PATH`` is planned, synced and mirrored exactly as one
with a registry feed (tag filters, ``mirror``: tag removals carry across the gap).

``PATH`` is a bundle file, a bundle extracted into a folder (it holds ``bundle.json``),
or a folder of bundle files: there the newest (by its ``created`` time) is the feed,
and the deltas' bases found in the folder supply what a delta does not carry. Content
that no bundle at hand carries (a delta whose base was never applied here) is an error
naming the base bundle to apply first.

Bundles come from the other side of an air gap: every tar member is checked
(``ops/formats/tarsafe``) before anything is read, ``bundle.json`` must match ``bundle.sha256``
and ``index.json`` its recorded digest, and every manifest and blob is verified against
its digest on the way into the store (manifests here, blobs by the store). Members are
read with a file handle per read, so parallel downloads never share a position.
"""

from __future__ import annotations

import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from reconciler.bundle import SCHEME
from reconciler.bundle import format as bf
from reconciler.errors import BundleBaseMissing, InvalidInput, NotFound
from reconciler.model import Descriptor, Digest, Index, Manifest, parse_manifest
from reconciler.model.mediatypes import OCI_INDEX, OCI_MANIFEST
from reconciler.model.registry import RegistryConfig
from reconciler.ops.formats.tarsafe import Limits, check_members, compressed_size, safe_tarinfo
from reconciler.registry.protocol import ManifestHead, RequestStats

T = TypeVar("T")
_CHUNK = 1 << 20
#: a bundle is a whole store: bounds far above an upload's, still bounds
LIMITS = Limits(member_bytes=1 << 40, total_bytes=1 << 50, members=10_000_000)


class BundleFile:
    """One bundle: a tar file or an extracted folder. ``manifest`` and ``digest`` after
    the checks of the module doc; ``read``/``chunks`` give a member's bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._members: dict[str, tuple[int, int]] = {}  # tar: name -> (offset, size)
        if path.is_dir():
            self.is_dir = True
        else:
            self.is_dir = False
            self._index_tar()
        data = self.read(bf.MANIFEST, limit=256 << 20)
        checksum = self.read(bf.CHECKSUM, limit=4096) if self.has(bf.CHECKSUM) else None
        self.manifest, self.digest = bf.parse(data, checksum, where=self.where)
        if self.has("index.json") and Digest.of(self.read("index.json", limit=256 << 20)) != \
                self.manifest.index_digest:
            raise InvalidInput(f"{self.where}: index.json does not match the digest bundle.json records",
                               hint="the bundle is damaged or was altered; copy it again")

    def _index_tar(self) -> None:
        try:
            if compressed_size(self.where) is not None:
                raise InvalidInput(f"{self.where}: a compressed bundle cannot be read in place",
                                   hint="decompress it first (bundles are plain tar files)")
            with tarfile.open(self.path, mode="r:", tarinfo=safe_tarinfo(LIMITS.header_bytes)) as tf:
                members = check_members(tf, where=self.where, limits=LIMITS)
        except (tarfile.TarError, OSError) as exc:
            raise InvalidInput(f"{self.where}: not a readable bundle: {exc}") from exc
        self._members = {n: (i.offset_data, i.size) for n, i in members.items() if i.isfile()}
        if bf.MANIFEST not in self._members:
            raise InvalidInput(f"{self.where}: not a reconciler bundle (no {bf.MANIFEST})",
                               hint="make one with `reconciler export --all -o BUNDLE`")

    def _file(self, name: str) -> Path:
        # names come from digests and fixed names only, never from the bundle
        return self.path / name

    def has(self, name: str) -> bool:
        return self._file(name).is_file() if self.is_dir else name in self._members

    def size(self, name: str) -> int:
        return self._file(name).stat().st_size if self.is_dir else self._members[name][1]

    def chunks(self, name: str) -> Iterator[bytes]:
        """The member's bytes, streamed from a file handle of its own."""
        if self.is_dir:
            with open(self._file(name), "rb") as f:
                yield from iter(lambda: f.read(_CHUNK), b"")
            return
        offset, left = self._members[name]
        with open(self.path, "rb") as f:
            f.seek(offset)
            while left:
                data = f.read(min(_CHUNK, left))
                if not data:
                    raise InvalidInput(f"{self.where}: {name} is cut short (the file is truncated)")
                left -= len(data)
                yield data

    def read(self, name: str, *, limit: int) -> bytes:
        if not self.has(name):
            raise InvalidInput(f"{self.where}: no {name} in the bundle")
        if self.size(name) > limit:
            raise InvalidInput(f"{self.where}: {name} is larger than {limit} bytes")
        return b"".join(self.chunks(name))


def blob_member(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def read_manifest(path: Path) -> tuple[bf.BundleManifest, Digest]:
    """A bundle's checked ``bundle.json`` and digest (``--since``, ``bundle verify``)."""
    b = BundleFile(path)
    return b.manifest, b.digest


def _is_bundle_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and tarfile.is_tarfile(path)


def open_bundles(path: Path) -> list[BundleFile]:
    """The bundles a feed path names, newest first: a file, an extracted bundle, or a
    folder of bundle files."""
    if not path.exists():
        raise InvalidInput(f"bundle feed {path} does not exist",
                           hint="give a bundle file or a folder of bundles (relative paths start at repos.yaml)")
    if path.is_file() or (path / bf.MANIFEST).is_file():
        return [BundleFile(path)]
    found = sorted((BundleFile(p) for p in path.iterdir() if _is_bundle_file(p)),
                   key=lambda b: (b.manifest.created, b.path.name), reverse=True)
    if not found:
        raise InvalidInput(f"no bundle in the folder {path}", hint="copy the bundle files (reconciler export --all) "
                                                                   "into it")
    return found


@dataclass
class _Chain:
    """The newest bundle and the bases it reaches among the bundles at hand."""

    head: BundleFile
    members: list[BundleFile]
    missing_base: bf.BundleManifest | None  # the deepest bundle whose base is not at hand

    @classmethod
    def of(cls, bundles: list[BundleFile]) -> _Chain:
        by_digest = {b.digest: b for b in bundles}
        chain, current = [bundles[0]], bundles[0]
        while current.manifest.base_digest is not None and current.manifest.base_digest in by_digest:
            current = by_digest[current.manifest.base_digest]
            if current in chain:
                break
            chain.append(current)
        return cls(bundles[0], chain, current.manifest if current.manifest.base_digest else None)

    def find(self, digest: Digest) -> BundleFile | None:
        return next((b for b in self.members if b.has(blob_member(digest))), None)


class BundleSource:
    """``UpstreamSource`` over the bundles at ``path`` (see the module doc)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.chain = _Chain.of(open_bundles(self.path))
        self.manifest = self.chain.head.manifest
        self.config = RegistryConfig(url=SCHEME + str(self.path))
        self.stats = RequestStats()
        self._lock = threading.Lock()
        #: repository -> subject -> its referrers (``referrers``)
        self._subjects: dict[str, dict[Digest, list[Descriptor]]] = {}

    def _count(self, kind: str, n: int = 0) -> None:
        with self._lock:
            self.stats.add(kind)
            self.stats.bytes_received += n

    def _repo(self, name: str) -> bf.RepoEntry:
        repo = self.manifest.repository(name)
        if repo is None:
            known = ", ".join(sorted(self.manifest.repositories)) or "none"
            raise NotFound(f"bundle {self.chain.head.where} has no repository {name!r} (it has: {known})",
                           hint="set upstream_name to a repository id (or publish name) of the bundle")
        return repo

    def _resolve(self, name: str, reference: str) -> tuple[bf.RepoEntry, Digest | None]:
        repo = self._repo(name)
        if ":" in reference:
            digest = Digest.parse(reference)
            return repo, digest if digest in repo.manifests else None
        return repo, repo.tags.get(reference)

    def _member(self, digest: Digest, what: str) -> BundleFile:
        found = self.chain.find(digest)
        if found is not None:
            return found
        base = self.chain.missing_base
        if base is not None:
            raise BundleBaseMissing(
                f"{what} {digest} is not in the bundle {self.chain.head.where}: it is a delta against the bundle "
                f"{base.base_digest} (made {base.base_created}), which carried it, and this store does not hold it: "
                "apply that bundle (or a full bundle) first",
                hint="or put that bundle into the bundle folder beside this one: the feed reads the chain")
        raise InvalidInput(f"{what} {digest} is listed by the bundle {self.chain.head.where} but not in it",
                           hint="the bundle is incomplete; make it again on the connected side")

    # -- UpstreamSource ----------------------------------------------------------------
    def tag_list(self, name: str) -> list[str]:
        self._count("tags")
        return sorted(self._repo(name).tags)

    def manifest_head(self, name: str, reference: str) -> ManifestHead | None:
        self._count("head")
        repo, digest = self._resolve(name, reference)
        if digest is None:
            return None
        found = self.chain.find(digest)
        size = found.size(blob_member(digest)) if found is not None else None
        return ManifestHead(digest, repo.manifests.get(digest), size)

    def manifest_get(self, name: str, reference: str) -> Manifest | Index:
        repo, digest = self._resolve(name, reference)
        if digest is None:
            raise NotFound(f"{self.chain.head.where}: repository {name!r} has no manifest {reference!r}",
                           hint="an index entry the bundle lacks is a platform its writer did not mirror: "
                                "select the same platforms (platforms: in repos.yaml) or fewer")
        raw = self._member(digest, "manifest").read(blob_member(digest), limit=LIMITS.json_bytes)
        self._count("manifest", len(raw))
        manifest = parse_manifest(raw, repo.manifests.get(digest))
        if manifest.digest != digest:
            raise InvalidInput(f"{self.chain.head.where}: manifest {digest} does not hash to its digest",
                               hint="the bundle is damaged or was altered; copy it again")
        return manifest

    def blob_fetch(self, name: str, digest: Digest, sink: Callable[[Iterator[bytes]], T]) -> T:
        if digest not in self._repo(name).blobs:
            raise NotFound(f"{self.chain.head.where}: repository {name!r} has no blob {digest}")
        source = self._member(digest, "blob")
        self._count("blob", source.size(blob_member(digest)))
        return sink(source.chunks(blob_member(digest)))

    def referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        """A bundle answers like a registry with the referrers API: from the subjects of
        the OCI manifests and indexes it lists for the repository (read once per
        repository; one it lists but does not carry, a delta's base, is left out)."""
        with self._lock:
            subjects = self._subjects.get(name)
        if subjects is None:
            subjects = {}
            for d, media_type in sorted(self._repo(name).manifests.items(), key=lambda kv: str(kv[0])):
                if media_type not in (OCI_MANIFEST, OCI_INDEX):
                    continue
                try:
                    m = self.manifest_get(name, str(d))
                except (BundleBaseMissing, NotFound):
                    continue
                if m.subject is not None:
                    subjects.setdefault(m.subject.digest, []).append(Descriptor(
                        m.media_type, m.digest, len(m.raw), annotations=dict(m.annotations),
                        artifact_type=m.referrer_type))
            with self._lock:
                self._subjects[name] = subjects
        self._count("referrers")
        return list(subjects.get(digest, ()))

    def close(self) -> None:
        pass

