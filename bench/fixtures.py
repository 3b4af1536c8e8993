"""The benchmark fixture set: deterministic images with realistic layer sizes, pushed to a
distribution registry over the V2 API.

Shape (defaults 20 repositories x 5 tags x 3 layers x 1 MiB, seed 1):

* repository i is ``bench/repo-iii``; even ones hold Docker schema2 manifests, odd ones OCI.
* tags ``v1..vN``. Layer 0 comes from a pool of ``base_pool`` base layers shared across
  repositories, layer 1 is shared by every tag of a repository, the other layers are unique
  per tag and platform (so a deduplicating store downloads less than a per-tag copier).
* ``indexes`` tags (default 2) are multi-platform: the last tag of repository 0 is a Docker
  manifest list, of repository 1 an OCI index, each with linux/amd64 and linux/arm64/v8.
* a layer is a gzip (stored deflate blocks: no compression, bytes independent of zlib's
  level choices) of a PAX tar holding one file of ``layer_size`` incompressible bytes from
  ``random.Random(seed-derived)``. Same parameters, same digests, on any machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import requests

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX])
MTIME = 1700000000


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def payload(seed: int, name: str, size: int) -> bytes:
    return random.Random(f"{seed}:{name}").randbytes(size)


def gzip_stored(data: bytes) -> bytes:
    """gzip member with stored deflate blocks (level 0): deterministic and incompressible."""
    c = zlib.compressobj(0, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush()
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"
    trailer = zlib.crc32(data).to_bytes(4, "little") + (len(data) & 0xFFFFFFFF).to_bytes(4, "little")
    return header + body + trailer


def make_layer(seed: int, name: str, size: int) -> tuple[bytes, str]:
    """(blob bytes, diff_id) of a layer holding ``bench/<name>/payload.bin``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        data = payload(seed, name, size)
        info = tarfile.TarInfo(f"bench/{name}/payload.bin")
        info.size, info.mtime, info.mode, info.uid, info.gid = len(data), MTIME, 0o644, 0, 0
        tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip_stored(raw), sha256(raw)


def jbytes(obj: object) -> bytes:
    return json.dumps(obj, indent=2).encode()


@dataclass
class FixtureSet:
    params: dict[str, int]
    blobs: dict[str, bytes] = field(default_factory=dict)
    #: digest -> (media type, raw bytes, referenced digests)
    manifests: dict[str, tuple[str, bytes, list[str]]] = field(default_factory=dict)
    #: repository -> tag -> digest, in push order
    repos: dict[str, dict[str, str]] = field(default_factory=dict)

    def blobs_of(self, digest: str) -> list[str]:
        """Every blob digest under a manifest or index (children walked)."""
        out: list[str] = []
        for ref in self.manifests[digest][2]:
            out += self.blobs_of(ref) if ref in self.manifests else [ref]
        return out

    def manifests_of(self, digest: str) -> list[str]:
        """Children first, then the manifest/index itself (the push order)."""
        kids = [r for r in self.manifests[digest][2] if r in self.manifests]
        return [k for kid in kids for k in self.manifests_of(kid)] + [digest]

    def summary(self) -> dict[str, Any]:
        unique = sum(len(b) for b in self.blobs.values())
        per_repo = sum(len(self.blobs[d]) for tags in self.repos.values()
                       for d in {b for t in tags.values() for b in self.blobs_of(t)})
        per_tag = sum(len(self.blobs[b]) for tags in self.repos.values() for t in tags.values()
                      for b in set(self.blobs_of(t)))
        return {"params": self.params, "repos": len(self.repos),
                "tags": sum(len(t) for t in self.repos.values()),
                "indexes": sum(1 for m in self.manifests.values() if m[0] in (DOCKER_LIST, OCI_INDEX)),
                "manifests": len(self.manifests), "blobs": len(self.blobs), "blob_bytes": unique,
                "blob_bytes_per_repo_sum": per_repo, "blob_bytes_per_tag_sum": per_tag}


def build(repos: int = 20, tags: int = 5, layers: int = 3, layer_size: int = 1 << 20, *,
          indexes: int = 2, base_pool: int = 4, seed: int = 1) -> FixtureSet:
    fs = FixtureSet(dict(repos=repos, tags=tags, layers=layers, layer_size=layer_size, indexes=indexes,
                         base_pool=base_pool, seed=seed))

    def layer(name: str) -> tuple[str, int, str]:
        blob, diff_id = make_layer(seed, name, layer_size)
        d = sha256(blob)
        fs.blobs[d] = blob
        return d, len(blob), diff_id

    def image(repo_i: int, tag: str, arch: str, variant: str | None, oci: bool) -> str:
        names = [f"base-{repo_i % base_pool}", f"repo-{repo_i}"][:layers]
        names += [f"repo-{repo_i}-{tag}-{arch}-{k}" for k in range(2, layers)]
        lays = [layer(n) for n in names]
        platform = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
        config = jbytes({**platform, "created": "2023-11-14T22:13:20Z",
                         "config": {"Labels": {"bench.repo": str(repo_i), "bench.tag": tag}},
                         "rootfs": {"type": "layers", "diff_ids": [x[2] for x in lays]},
                         "history": [{"created_by": f"layer {k}"} for k in range(len(lays))]})
        fs.blobs[sha256(config)] = config
        mt = OCI_MANIFEST if oci else DOCKER_MANIFEST
        doc = {"schemaVersion": 2, "mediaType": mt,
               "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "size": len(config),
                          "digest": sha256(config)},
               "layers": [{"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "size": s, "digest": d}
                          for d, s, _ in lays]}
        raw = jbytes(doc)
        fs.manifests[sha256(raw)] = (mt, raw, [sha256(config)] + [x[0] for x in lays])
        return sha256(raw)

    for i in range(repos):
        oci = i % 2 == 1
        repo_tags: dict[str, str] = {}
        for j in range(1, tags + 1):
            tag = f"v{j}"
            amd = image(i, tag, "amd64", None, oci)
            if i < indexes and j == tags:
                arm = image(i, tag, "arm64", "v8", oci)
                mt = OCI_INDEX if oci else DOCKER_LIST
                child_mt = OCI_MANIFEST if oci else DOCKER_MANIFEST
                entries = [{"mediaType": child_mt, "size": len(fs.manifests[d][1]), "digest": d,
                            "platform": p} for d, p in ((amd, {"architecture": "amd64", "os": "linux"}),
                                                        (arm, {"architecture": "arm64", "os": "linux",
                                                               "variant": "v8"}))]
                raw = jbytes({"schemaVersion": 2, "mediaType": mt, "manifests": entries})
                fs.manifests[sha256(raw)] = (mt, raw, [amd, arm])
                repo_tags[tag] = sha256(raw)
            else:
                repo_tags[tag] = amd
        fs.repos[f"bench/repo-{i:03d}"] = repo_tags
    return fs


class Pusher:
    """Pushes blobs (upload once, cross-repo mount afterwards) and manifests to a registry."""

    def __init__(self, base_url: str, workers: int = 4) -> None:
        self.base = base_url.rstrip("/")
        self.workers = workers
        self.session = requests.Session()
        self.first_repo: dict[str, str] = {}
        self._lock = threading.Lock()
        self.stats = {"blobs_uploaded": 0, "bytes_uploaded": 0, "blobs_mounted": 0, "manifests_put": 0}

    def close(self) -> None:
        self.session.close()

    def _check(self, r: requests.Response, *ok: int) -> requests.Response:
        if r.status_code not in ok:
            raise RuntimeError(f"{r.request.method} {r.url}: HTTP {r.status_code} {r.text[:300]}")
        return r

    def _location(self, r: requests.Response) -> str:
        loc = r.headers["Location"]
        return loc if loc.startswith("http") else self.base + loc

    def blob(self, repo: str, digest: str, data: bytes | BinaryIO, size: int) -> None:
        src = self.first_repo.get(digest)
        if src is not None:
            r = self._check(self.session.post(f"{self.base}/v2/{repo}/blobs/uploads/",
                                              params={"mount": digest, "from": src}), 201, 202)
            if r.status_code == 201:
                self.stats["blobs_mounted"] += 1
                return
        else:
            r = self._check(self.session.post(f"{self.base}/v2/{repo}/blobs/uploads/"), 202)
        loc = self._location(r)
        self._check(self.session.put(loc, params={"digest": digest}, data=data,
                                     headers={"Content-Type": "application/octet-stream"}), 201)
        self.first_repo.setdefault(digest, repo)
        self.stats["blobs_uploaded"] += 1
        self.stats["bytes_uploaded"] += size

    def manifest(self, repo: str, ref: str, media_type: str, raw: bytes) -> None:
        self._check(self.session.put(f"{self.base}/v2/{repo}/manifests/{ref}", data=raw,
                                     headers={"Content-Type": media_type}), 201)
        self.stats["manifests_put"] += 1

    def push(self, fs: FixtureSet) -> dict[str, Any]:
        t0 = time.monotonic()
        for repo, tags in fs.repos.items():
            wanted = list(dict.fromkeys(b for d in tags.values() for b in fs.blobs_of(d)))
            # blobs never uploaded before go in parallel; mounts of earlier uploads are cheap
            fresh = [d for d in wanted if d not in self.first_repo]
            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(self._fresh, [repo] * len(fresh), fresh, [fs.blobs[d] for d in fresh]))
            for d in wanted:
                if d not in fresh:
                    self.blob(repo, d, fs.blobs[d], len(fs.blobs[d]))
            for tag, digest in tags.items():
                for m in fs.manifests_of(digest)[:-1]:
                    self.manifest(repo, m, fs.manifests[m][0], fs.manifests[m][1])
                self.manifest(repo, tag, fs.manifests[digest][0], fs.manifests[digest][1])
        return {**self.stats, "seconds": round(time.monotonic() - t0, 3)}

    def _fresh(self, repo: str, digest: str, data: bytes) -> None:
        # one session per thread: requests.Session is not thread-safe
        s = requests.Session()
        try:
            r = self._check(s.post(f"{self.base}/v2/{repo}/blobs/uploads/"), 202)
            self._check(s.put(self._location(r), params={"digest": digest}, data=data,
                              headers={"Content-Type": "application/octet-stream"}), 201)
        finally:
            s.close()
        with self._lock:
            self.first_repo.setdefault(digest, repo)
            self.stats["blobs_uploaded"] += 1
            self.stats["bytes_uploaded"] += len(data)
