"""Image manifests and indexes parsed from raw bytes, raw bytes kept.

``parse_manifest(raw, media_type)`` returns a ``Manifest`` (Docker schema1 signed or
unsigned, Docker schema2, OCI image manifest) or an ``Index`` (Docker manifest list, OCI
image index). The digest is of the raw bytes, except for signed schema1 manifests whose
digest is over the payload without the JWS signature block (docs/original-system.md,
"Manifest digests").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ManifestInvalid
from reconciler.model import jsonsafe
from reconciler.model import mediatypes as mt
from reconciler.model.descriptor import Descriptor, Platform
from reconciler.model.digest import Digest

#: manifests larger than this are refused (the distribution registry's own limit is 4 MiB)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
#: indexes listing more entries are refused: real ones list a few platforms (tens at
#: most); a hostile one near the byte limit could list ~40,000 children, each one a
#: request to fetch and a row to store
MAX_INDEX_ENTRIES = 10_000
#: indexes nested deeper are refused (uploads, sync, plan): real ones nest one level, and
#: a hostile upstream could otherwise chain indexes for as long as it likes
MAX_INDEX_DEPTH = 8
#: RFC 6838 type/subtype (what ``artifactType`` must be), parameters not allowed
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#&^_.+-]{0,126}")


@dataclass(frozen=True)
class Manifest:
    """An image manifest: a config (schema2 / OCI) and ordered layers."""

    media_type: str
    raw: bytes
    digest: Digest
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()
    artifact_type: str | None = None
    #: schema1 only: the platform written in the manifest body
    architecture: str | None = None
    #: (OCI) the manifest this one refers to: a signature, SBOM or attestation of it
    subject: Descriptor | None = None

    is_index = False

    @property
    def referrer_type(self) -> str | None:
        """The ``artifactType`` the referrers API lists for it: the manifest's own, else
        its config's media type (image spec, "Listing referrers")."""
        return self.artifact_type or (self.config.media_type if self.config else None)

    @property
    def schema_version(self) -> int:
        return mt.schema_version(self.media_type)

    def blobs(self) -> tuple[Descriptor, ...]:
        """Every blob the manifest needs stored: config first, then non-foreign layers,
        de-duplicated (schema1 repeats empty layers)."""
        seen: set[Digest] = set()
        out: list[Descriptor] = []
        for d in ((self.config,) if self.config else ()) + self.layers:
            if d.foreign or d.digest in seen:
                continue
            seen.add(d.digest)
            out.append(d)
        return tuple(out)

    def foreign_layers(self) -> tuple[Descriptor, ...]:
        return tuple(d for d in self.layers if d.foreign)

    def references(self) -> tuple[Digest, ...]:
        return tuple(d.digest for d in self.blobs())


@dataclass(frozen=True)
class Index:
    """A multi-platform index: Docker manifest list or OCI image index.

    ``manifests`` are the entries of a manifest or index media type: the children that
    are fetched, stored and served. ``skipped`` are entries of any other media type
    (the image spec says a client must not fail on those): they stay in the raw bytes,
    which are stored and served unchanged, but what they point at is not fetched."""

    media_type: str
    raw: bytes
    digest: Digest
    manifests: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()
    skipped: tuple[Descriptor, ...] = ()
    artifact_type: str | None = None
    #: (OCI) the manifest this index refers to
    subject: Descriptor | None = None

    is_index = True
    schema_version = 2

    @property
    def referrer_type(self) -> str | None:
        return self.artifact_type

    def children(self) -> tuple[Digest, ...]:
        """The child digests in order, each once (a dict, not a list scan: linear time)."""
        return tuple(dict.fromkeys(d.digest for d in self.manifests))

    def references(self) -> tuple[Digest, ...]:
        return self.children()

    def amd64_child(self) -> Descriptor | None:
        """The first linux/amd64 entry (Crane's fallback for index-unaware clients)."""
        for d in self.manifests:
            if d.platform and d.platform.os == "linux" and d.platform.architecture == "amd64":
                return d
        return None

    def child_for(self, platform: Platform) -> Descriptor | None:
        for d in self.manifests:
            p = d.platform
            if p and p.os == platform.os and p.architecture == platform.architecture and (
                platform.variant is None or p.variant == platform.variant
            ):
                return d
        return None


AnyManifest = Manifest | Index


def _b64_padded(text: str, *, where: str) -> bytes:
    """Decode JWS base64 (URL-safe or standard) after restoring the padding."""
    cleaned = "".join(text.split())
    if len(cleaned) % 4 == 1:
        raise ManifestInvalid(f"{where}: invalid base64 length")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ManifestInvalid(f"{where}: invalid base64: {exc}") from exc


def schema1_signed_payload(raw: bytes, doc: dict[str, Any]) -> bytes:
    """The bytes a signed schema1 manifest's digest is computed over."""
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or not sigs or not isinstance(sigs[0], dict):
        raise ManifestInvalid("schema1 manifest: 'signatures' must be a non-empty list")
    protected = sigs[0].get("protected")
    if not isinstance(protected, str):
        raise ManifestInvalid("schema1 manifest: signature lacks 'protected'")
    try:
        header = json.loads(_b64_padded(protected, where="schema1 protected header"))
        length = int(header["formatLength"])
        tail = _b64_padded(header["formatTail"], where="schema1 formatTail")
    except ManifestInvalid:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestInvalid(f"schema1 manifest: bad protected header: {exc}") from exc
    if not 0 < length <= len(raw):
        raise ManifestInvalid("schema1 manifest: formatLength outside the manifest")
    return raw[:length] + tail


def detect_media_type(doc: dict[str, Any]) -> str:
    """The media type a manifest document declares or implies."""
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    version = doc.get("schemaVersion")
    if version == 1:
        return mt.DOCKER_SCHEMA1_SIGNED if "signatures" in doc else mt.DOCKER_SCHEMA1
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc or "layers" in doc:
        return mt.OCI_MANIFEST
    raise ManifestInvalid("cannot tell the manifest's media type: no 'mediaType' and no recognisable fields")


def parse_manifest(raw: bytes, media_type: str | None = None) -> AnyManifest:
    """Parse manifest bytes. ``media_type`` (e.g. a Content-Type) wins over the body's
    own claim only where the body says nothing; a contradiction is an error."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestInvalid(f"manifest is {len(raw)} bytes, more than the {MAX_MANIFEST_BYTES} byte limit")
    try:
        doc = jsonsafe.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    body_type = detect_media_type(doc)
    if media_type:
        media_type = media_type.split(";")[0].strip()
    if media_type in mt.SCHEMA1_TYPES and body_type in mt.SCHEMA1_TYPES:
        # registries label signed schema1 as v1+json and vice versa; trust the body
        media_type = body_type
    if media_type and media_type in mt.MANIFEST_TYPES and "mediaType" in doc and media_type != body_type:
        raise ManifestInvalid(f"manifest says mediaType {body_type!r} but was delivered as {media_type!r}")
    if not media_type or media_type not in mt.MANIFEST_TYPES:
        media_type = body_type
    if media_type not in mt.MANIFEST_TYPES:
        raise ManifestInvalid(f"unsupported manifest media type {media_type!r}")

    if mt.is_index(media_type):
        return _parse_index(raw, doc, media_type)
    if mt.is_schema1(media_type):
        return _parse_schema1(raw, doc, media_type)
    return _parse_image(raw, doc, media_type)


def _annotations(doc: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    ann = doc.get("annotations") or {}
    if not isinstance(ann, dict):
        raise ManifestInvalid("'annotations' must be an object")
    return tuple(sorted((str(k), str(v)) for k, v in ann.items()))


def _artifact_type(doc: dict[str, Any]) -> str | None:
    """``artifactType``: a media type (``type/subtype``) when present."""
    value = doc.get("artifactType")
    if value is None:
        return None
    if not isinstance(value, str) or not _MEDIA_TYPE.fullmatch(value):
        raise ManifestInvalid(f"'artifactType' must be a media type such as application/spdx+json, not {value!r}")
    return value


def _subject(doc: dict[str, Any], media_type: str) -> Descriptor | None:
    """``subject`` of an OCI manifest or index: a full descriptor of a manifest (its
    digest, size and media type are what a referrers lookup and a copy need). Docker's
    formats have no such field: there it is left in the bytes and not followed."""
    if media_type not in (mt.OCI_MANIFEST, mt.OCI_INDEX) or doc.get("subject") is None:
        return None
    d = Descriptor.from_json(doc["subject"], where="subject")
    if d.size is None or not d.media_type:
        raise ManifestInvalid("subject: 'mediaType' and 'size' are required")
    return d


def _parse_index(raw: bytes, doc: dict[str, Any], media_type: str) -> Index:
    if doc.get("schemaVersion") != 2:
        raise ManifestInvalid("index: 'schemaVersion' must be 2")
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise ManifestInvalid("index: 'manifests' must be a list")
    if len(entries) > MAX_INDEX_ENTRIES:
        raise ManifestInvalid(f"index lists {len(entries)} manifests, more than the limit of {MAX_INDEX_ENTRIES}",
                              hint="split it into several indexes; real multi-platform indexes list a few dozen")
    manifests, skipped = [], []
    for i, entry in enumerate(entries):
        d = Descriptor.from_json(entry, where=f"manifests[{i}]")
        # Any manifest type is a child, in a Docker manifest list too: Docker Hub serves
        # lists of OCI manifests (made by older `buildx imagetools create`). An entry of
        # another type is kept in the bytes but not followed (image spec: "MUST NOT error
        # on encountering a mediaType that is unknown to the implementation").
        if not mt.is_manifest(d.media_type):
            skipped.append(d)
            continue
        if media_type == mt.DOCKER_MANIFEST_LIST and d.platform is None:
            raise ManifestInvalid(f"manifests[{i}]: 'platform' with 'os' and 'architecture' is required")
        manifests.append(d)
    return Index(media_type, raw, Digest.of(raw), tuple(manifests), _annotations(doc), tuple(skipped),
                 _artifact_type(doc), _subject(doc, media_type))


def _parse_image(raw: bytes, doc: dict[str, Any], media_type: str) -> Manifest:
    if doc.get("schemaVersion") != 2:
        raise ManifestInvalid("manifest: 'schemaVersion' must be 2")
    config = Descriptor.from_json(doc.get("config"), where="config")
    layers_doc = doc.get("layers")
    if not isinstance(layers_doc, list):
        raise ManifestInvalid("manifest: 'layers' must be a list")
    layers = tuple(Descriptor.from_json(layer, where=f"layers[{i}]") for i, layer in enumerate(layers_doc))
    for d in (config, *layers):
        if d.size is None:
            raise ManifestInvalid(f"manifest: descriptor {d.digest} lacks 'size'")
    return Manifest(media_type, raw, Digest.of(raw), config, layers, _annotations(doc), _artifact_type(doc),
                    None, _subject(doc, media_type))


def _parse_schema1(raw: bytes, doc: dict[str, Any], media_type: str) -> Manifest:
    fs_layers = doc.get("fsLayers")
    if not isinstance(fs_layers, list) or not fs_layers:
        raise ManifestInvalid("schema1 manifest: 'fsLayers' must be a non-empty list")
    layers = []
    for i, entry in enumerate(fs_layers):
        if not isinstance(entry, dict) or not isinstance(entry.get("blobSum"), str):
            raise ManifestInvalid(f"schema1 manifest: fsLayers[{i}].blobSum is required")
        layers.append(Descriptor.from_json(
            {"digest": entry["blobSum"], "mediaType": mt.DOCKER_LAYER}, where=f"fsLayers[{i}]"
        ))
    if media_type == mt.DOCKER_SCHEMA1_SIGNED or "signatures" in doc:
        media_type = mt.DOCKER_SCHEMA1_SIGNED
        digest = Digest.of(schema1_signed_payload(raw, doc))
    else:
        digest = Digest.of(raw)
    arch = doc.get("architecture")
    # schema1 lists layers top-most first; keep them in base-first order like schema2
    return Manifest(media_type, raw, digest, None, tuple(reversed(layers)), (), None,
                    arch if isinstance(arch, str) else None)
