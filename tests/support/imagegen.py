"""Deterministic synthetic images for the tests: real gzip'd tar layers, real configs,
manifests of every media type (Docker schema1 signed and unsigned, schema2, manifest
list, OCI manifest, OCI index). Same arguments, same bytes, same digests."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.model import Digest, Index, Manifest, parse_manifest
from reconciler.model import mediatypes as mt
from reconciler.store.protocol import Store

MTIME = 1700000000


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip'd tar of ``files``; returns (blob bytes, diff_id of the uncompressed tar)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), sha(raw)


def canonical(obj: object) -> bytes:
    return json.dumps(obj, indent=3, sort_keys=False).encode()


@dataclass
class Image:
    """A manifest or index plus every blob it needs (children of an index included)."""

    manifest: Manifest | Index
    blobs: dict[str, bytes] = field(default_factory=dict)
    children: list[Image] = field(default_factory=list)

    @property
    def digest(self) -> Digest:
        return self.manifest.digest

    def all_blobs(self) -> dict[str, bytes]:
        out = dict(self.blobs)
        for c in self.children:
            out.update(c.all_blobs())
        return out

    def all_manifests(self) -> list[Manifest | Index]:
        out: list[Manifest | Index] = [c.manifest for c in self.children]
        out.append(self.manifest)
        return out


# what the builders return: a test reads .layers of an image or .manifests of an index
# without narrowing, and a mix of both is a plain Image
@dataclass
class ManifestImage(Image):
    """An image with one manifest (no children)."""

    manifest: Manifest


@dataclass
class IndexImage(Image):
    """An index (manifest list) and its child images."""

    manifest: Index


def build_image(name: str, *, oci: bool = False, arch: str = "amd64", variant: str | None = None,
                layers: int = 2, shared: tuple[bytes, ...] = (), payload: int = 64,
                foreign: bool = False) -> ManifestImage:
    """An image whose unique layers derive from ``name``; ``shared`` adds given layer
    file contents first (shared between images that pass the same bytes)."""
    blobs: dict[str, bytes] = {}
    descs, diff_ids = [], []
    layer_type = mt.OCI_LAYER_GZIP if oci else mt.DOCKER_LAYER
    contents = [{"shared/base.txt": s} for s in shared]
    contents += [{f"{name}/layer{i}.txt": (f"{name}:{arch}:{i}:".encode() * payload)[:payload * 8]}
                 for i in range(layers)]
    for files in contents:
        blob, diff_id = make_layer(files)
        blobs[sha(blob)] = blob
        descs.append({"mediaType": layer_type, "size": len(blob), "digest": sha(blob)})
        diff_ids.append(diff_id)
    if foreign:
        fake = b"foreign layer bytes that are never downloaded"
        descs.append({"mediaType": mt.DOCKER_FOREIGN_LAYER, "size": len(fake), "digest": sha(fake),
                      "urls": ["https://example.invalid/layer"]})
        diff_ids.append(sha(fake))
    platform = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
    config = canonical({**platform, "config": {"Env": [f"IMAGE={name}"]}, "created": "2023-11-14T22:13:20Z",
                        "rootfs": {"type": "layers", "diff_ids": diff_ids},
                        "history": [{"created_by": f"layer {i}"} for i in range(len(diff_ids))]})
    blobs[sha(config)] = config
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST if oci else mt.DOCKER_SCHEMA2,
        "config": {"mediaType": mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG, "size": len(config),
                   "digest": sha(config)},
        "layers": descs,
    }
    raw = canonical(doc)
    m = parse_manifest(raw)
    assert isinstance(m, Manifest)
    return ManifestImage(m, blobs)


def build_index(children: Sequence[Image], *, oci: bool = False) -> IndexImage:
    entries = []
    for c in children:
        m = c.manifest
        cfg = json.loads(c.blobs[str(m.config.digest)]) if isinstance(m, Manifest) and m.config else {}
        platform = {"architecture": cfg.get("architecture", "amd64"), "os": cfg.get("os", "linux")}
        if cfg.get("variant"):
            platform["variant"] = cfg["variant"]
        entries.append({"mediaType": m.media_type, "size": len(m.raw), "digest": str(m.digest),
                        "platform": platform})
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX if oci else mt.DOCKER_MANIFEST_LIST, "manifests": entries}
    idx = parse_manifest(canonical(doc))
    assert isinstance(idx, Index)
    return IndexImage(idx, {}, list(children))


def build_multiarch(name: str, *, oci: bool = False, shared: tuple[bytes, ...] = (b"base",)) -> IndexImage:
    """An index with linux/amd64, linux/arm64/v8 and linux/ppc64le children sharing a layer."""
    kids = [build_image(f"{name}-{a}", oci=oci, arch=a, variant=v, shared=shared)
            for a, v in (("amd64", None), ("arm64", "v8"), ("ppc64le", None))]
    return build_index(kids, oci=oci)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def build_schema1(name: str, *, signed: bool = True, tag: str = "latest") -> ManifestImage:
    """A Docker schema1 manifest (signature bytes are fake: only the structure matters
    for the digest, which is over the payload without the signature block)."""
    blob, _ = make_layer({f"{name}/s1.txt": name.encode() * 16})
    blobs = {sha(blob): blob}
    doc = {
        "schemaVersion": 1, "name": name, "tag": tag, "architecture": "amd64",
        "fsLayers": [{"blobSum": sha(blob)}, {"blobSum": sha(blob)}],
        "history": [{"v1Compatibility": json.dumps({"id": "a" * 64})},
                    {"v1Compatibility": json.dumps({"id": "b" * 64})}],
    }
    payload = json.dumps(doc, indent=3).encode()
    if not signed:
        m = parse_manifest(payload, mt.DOCKER_SCHEMA1)
        assert isinstance(m, Manifest)
        return ManifestImage(m, blobs)
    # the signed form: the payload's closing "\n}" is replaced by ',\n   "signatures": [...]\n}'
    format_length = len(payload) - 2
    format_tail = payload[format_length:]
    protected = _b64(json.dumps({"formatLength": format_length, "formatTail": _b64(format_tail),
                                 "time": "2023-11-14T22:13:20Z"}).encode())
    sig = {"header": {"alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}},
           "signature": _b64(b"not-a-real-signature"), "protected": protected}
    raw = payload[:format_length] + b',\n   "signatures": ' + json.dumps([sig], indent=3).encode() + b"\n}"
    m = parse_manifest(raw, mt.DOCKER_SCHEMA1_SIGNED)
    assert isinstance(m, Manifest)
    assert m.digest == Digest.of(payload)
    return ManifestImage(m, blobs)


def store_image(store: Store, image: Image) -> None:
    """Put every blob and manifest of ``image`` into ``store`` (no repository version)."""
    for digest, data in image.all_blobs().items():
        if not store.blob_has(Digest.parse(digest)):
            store.blob_put(io.BytesIO(data), Digest.parse(digest), size=len(data))
    for m in image.all_manifests():
        store.manifest_put(m)
