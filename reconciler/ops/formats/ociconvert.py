"""Docker schema2 manifests and manifest lists rewritten as OCI manifests and indexes.

An OCI image layout's ``index.json`` may only point at OCI types as far as skopeo and
containers/image are concerned (they skip other descriptors), so the OCI export writes
Docker content the way ``skopeo copy`` into an ``oci:`` layout would: media types mapped
(manifest, config, layers, foreign -> non-distributable), blob bytes untouched, indexes
rebuilt over the converted children. The converted manifests get new digests; OCI content
is exported byte for byte, except an OCI index with Docker children, which is rebuilt
over their OCI forms (its old bytes would point at digests the layout does not hold).
Schema1 has no OCI form and is left out. An index entry the repository version left out
on purpose (a platform not mirrored, ``absent``) keeps its descriptor when it is OCI
already (so an OCI index stays byte for byte); a Docker one cannot be converted without
its bytes and is dropped from the rebuilt index.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from reconciler.model import Digest
from reconciler.model import mediatypes as mt

_LAYER_TYPES = {
    mt.DOCKER_LAYER: mt.OCI_LAYER_GZIP,
    mt.DOCKER_FOREIGN_LAYER: mt.OCI_NONDISTRIBUTABLE_PREFIX + "v1.tar+gzip",
}


def _dump(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def convert(media_type: str, raw: bytes, load: Callable[[Digest], tuple[str, bytes]],
            out: dict[Digest, tuple[str, bytes]], absent: frozenset[Digest] = frozenset()) -> tuple[str, bytes] | None:
    """The OCI form of a manifest (``(media_type, bytes)``), or None for schema1. Every
    converted manifest, children included, is added to ``out`` by its new digest;
    ``absent``: index entries not held (see the module docstring)."""
    if mt.is_schema1(media_type):
        return None
    if media_type == mt.OCI_MANIFEST:
        result = (media_type, raw)
    elif media_type in (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST):
        result = _index(media_type, raw, load, out, absent)
    elif media_type == mt.DOCKER_SCHEMA2:
        doc = json.loads(raw)
        doc["mediaType"] = mt.OCI_MANIFEST
        doc["config"] = {**doc["config"], "mediaType": mt.OCI_CONFIG}
        doc["layers"] = [{**layer, "mediaType": _LAYER_TYPES.get(layer.get("mediaType", ""), layer.get("mediaType"))}
                         for layer in doc["layers"]]
        result = (mt.OCI_MANIFEST, _dump(doc))
    else:
        return None
    out[Digest.of(result[1])] = result
    return result


def _index(media_type: str, raw: bytes, load: Callable[[Digest], tuple[str, bytes]],
           out: dict[Digest, tuple[str, bytes]], absent: frozenset[Digest]) -> tuple[str, bytes]:
    """An index over the OCI forms of its children: the same bytes when it is an OCI
    index whose children all kept theirs, else rebuilt (new digest)."""
    doc = json.loads(raw)
    entries = []
    for entry in doc["manifests"]:
        if Digest.parse(entry["digest"]) in absent:
            if entry.get("mediaType") in (mt.OCI_MANIFEST, mt.OCI_INDEX):
                entries.append(entry)
            continue
        child = convert(*load(Digest.parse(entry["digest"])), load, out, absent)
        if child is None:
            continue  # a schema1 child has no OCI form
        entries.append({**entry, "mediaType": child[0], "digest": str(Digest.of(child[1])), "size": len(child[1])})
    if media_type == mt.OCI_INDEX and entries == doc["manifests"]:
        return media_type, raw
    doc["mediaType"], doc["manifests"] = mt.OCI_INDEX, entries
    return mt.OCI_INDEX, _dump(doc)
