"""Readers for the upload formats that carry manifests as they are: skopeo ``dir:``
tarballs, OCI image layouts, and manifest list / OCI index JSON files.

Each reader returns a ``Parsed`` value: the manifests and indexes in the file (children
before parents), which of them are top-level (``roots``), where each blob in the file can
be streamed from, and the tags the file names. Nothing is stored here; verification of
manifest bytes happens while reading, of blob bytes while ``upload`` streams them.
``docker save`` tarballs (which need their layers compressed) live in ``dockersave``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import IO, Any

from reconciler.errors import DigestMismatch, InvalidInput, ManifestInvalid, UploadInvalid
from reconciler.model import Digest, Index, Manifest, parse_manifest, parse_reference, validate_tag
from reconciler.model.manifest import MAX_INDEX_DEPTH, MAX_MANIFEST_BYTES
from reconciler.ops.formats.archive import Archive

log = logging.getLogger(__name__)
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class BlobSource:
    digest: Digest
    size: int | None
    open: Callable[[], IO[bytes]]
    where: str


@dataclass
class Parsed:
    format: str
    manifests: list[Manifest | Index] = field(default_factory=list)
    roots: list[Digest] = field(default_factory=list)
    blobs: dict[Digest, BlobSource] = field(default_factory=dict)
    tags: dict[str, Digest] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: temp files etc. that live as long as the upload
    resources: ExitStack = field(default_factory=ExitStack)

    def add_manifest(self, m: Manifest | Index) -> None:
        if all(x.digest != m.digest for x in self.manifests):
            self.manifests.append(m)

    def add_tag(self, name: str, digest: Digest, *, where: str) -> None:
        if name in self.tags and self.tags[name] != digest:
            raise UploadInvalid(f"{where}: tag {name!r} names two different images "
                                f"({self.tags[name]} and {digest})",
                                hint="one tag name points at one manifest or index per repository")
        self.tags[name] = digest


def parse_manifest_bytes(raw: bytes, *, where: str, expected: Digest | None = None,
                         media_type: str | None = None) -> Manifest | Index:
    try:
        m = parse_manifest(raw, media_type)
    except ManifestInvalid as exc:
        raise ManifestInvalid(f"{where}: {exc.message}", hint=exc.hint) from exc
    if expected is not None and m.digest != expected:
        raise DigestMismatch(str(expected), str(m.digest), where=where)
    return m


def tag_from_ref_name(value: str) -> str | None:
    """``latest`` or ``docker.io/library/busybox:latest`` -> ``latest``; else None."""
    try:
        return validate_tag(value)
    except InvalidInput:
        pass
    try:
        return parse_reference(value).tag
    except InvalidInput:
        return None


# -- skopeo dir: ------------------------------------------------------------------------
def read_skopeo_dir(archive: Archive) -> Parsed:
    """``manifest.json`` (stored byte for byte), ``version``, and blobs named by hex digest:
    ``<hex>.tar`` for Directory Transport Version 1.0, bare ``<hex>`` for 1.1."""
    parsed = Parsed("skopeo-dir")
    if archive.has("version"):
        version = archive.read_bytes("version", limit=4096).decode("utf-8", "replace").strip()
        if not version.startswith("Directory Transport Version:"):
            raise UploadInvalid(f"{archive.where}: 'version' is not a skopeo dir: transport version file")
        parsed.notes.append(version)
    raw = archive.read_bytes("manifest.json")
    m = parse_manifest_bytes(raw, where=f"{archive.where}: manifest.json")
    if isinstance(m, Index):
        # skopeo copy --multi-arch all dir: keeps each instance as <hex>.manifest.json
        for child in m.manifests:
            name = f"{child.digest.hex}.manifest.json"
            if archive.has(name):
                cm = parse_manifest_bytes(archive.read_bytes(name), where=f"{archive.where}: {name}",
                                          expected=child.digest, media_type=child.media_type)
                _skopeo_blobs(archive, cm, parsed)
                parsed.add_manifest(cm)
    else:
        _skopeo_blobs(archive, m, parsed)
    parsed.add_manifest(m)
    parsed.roots.append(m.digest)
    return parsed


def _skopeo_blobs(archive: Archive, m: Manifest | Index, parsed: Parsed) -> None:
    if isinstance(m, Index):
        return
    for d in m.blobs():
        for name in (d.digest.hex, f"{d.digest.hex}.tar"):
            if archive.has(name):
                parsed.blobs[d.digest] = _source(archive, name, d.digest)
                break


def _source(archive: Archive, name: str, digest: Digest) -> BlobSource:
    return BlobSource(digest, archive.size(name), lambda: archive.open(name), f"{archive.where}: {name}")


# -- OCI image layout -------------------------------------------------------------------
def read_oci_layout(archive: Archive) -> Parsed:
    """``oci-layout`` + ``index.json`` + ``blobs/<alg>/<hex>``; ``index.json`` may list
    several manifests and nested indexes; ``org.opencontainers.image.ref.name`` annotations
    become tags."""
    parsed = Parsed("oci-layout")
    if archive.has("oci-layout"):
        layout = archive.read_json("oci-layout")
        if not isinstance(layout, dict) or not str(layout.get("imageLayoutVersion", "")).startswith("1."):
            raise UploadInvalid(f"{archive.where}: oci-layout: unsupported imageLayoutVersion")
    top = archive.read_json("index.json")
    if not isinstance(top, dict) or not isinstance(top.get("manifests"), list) or not top["manifests"]:
        raise UploadInvalid(f"{archive.where}: index.json lists no manifests")
    for i, entry in enumerate(top["manifests"]):
        where = f"{archive.where}: index.json manifests[{i}]"
        digest, media_type = _descriptor(entry, where=where)
        m = _load_oci(archive, digest, media_type, parsed, depth=0)
        if m.digest not in parsed.roots:
            parsed.roots.append(m.digest)
        ref = (entry.get("annotations") or {}).get(REF_NAME)
        if isinstance(ref, str) and ref:
            tag = tag_from_ref_name(ref)
            if tag:
                parsed.add_tag(tag, m.digest, where=where)
            else:
                parsed.notes.append(f"ignored ref name {ref!r} (not a tag)")
    return parsed


def _descriptor(entry: Any, *, where: str) -> tuple[Digest, str | None]:
    if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
        raise UploadInvalid(f"{where}: expected a descriptor with a 'digest'")
    try:
        return Digest.parse(entry["digest"]), entry.get("mediaType")
    except InvalidInput as exc:
        raise UploadInvalid(f"{where}: {exc.message}") from exc


def _blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _load_oci(archive: Archive, digest: Digest, media_type: str | None, parsed: Parsed, *,
              depth: int) -> Manifest | Index:
    if depth > MAX_INDEX_DEPTH:
        raise UploadInvalid(f"{archive.where}: indexes nested more than {MAX_INDEX_DEPTH} deep")
    name = _blob_name(digest)
    if not archive.has(name):
        raise UploadInvalid(f"{archive.where}: index.json names {digest} but {name} is missing")
    raw = archive.read_bytes(name, limit=MAX_MANIFEST_BYTES)
    m = parse_manifest_bytes(raw, where=f"{archive.where}: {name}", expected=digest, media_type=media_type)
    if isinstance(m, Index):
        for child in m.manifests:
            if archive.has(_blob_name(child.digest)):
                _load_oci(archive, child.digest, child.media_type, parsed, depth=depth + 1)
            # a child absent from the layout must already be in the repository (checked later)
    else:
        for d in m.blobs():
            if archive.has(_blob_name(d.digest)):
                parsed.blobs[d.digest] = _source(archive, _blob_name(d.digest), d.digest)
    parsed.add_manifest(m)
    return m


# -- manifest list / OCI index JSON -------------------------------------------------------
def read_manifest_json(raw: bytes, *, where: str) -> Parsed:
    """A manifest list or OCI index JSON file (its children must already be in the
    repository); an image manifest JSON file whose blobs are there is accepted as well."""
    parsed = Parsed("index-json")
    m = parse_manifest_bytes(raw, where=where)
    parsed.add_manifest(m)
    parsed.roots.append(m.digest)
    return parsed
