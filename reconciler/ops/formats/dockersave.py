"""``docker save`` tarballs: ``manifest.json`` (a list of ``{Config, RepoTags, Layers}``),
config JSON files and uncompressed layer tars.

Each image becomes a Docker schema2 manifest with its config and gzip-compressed layers.
Compression is reproducible (gzip header mtime 0, no file name, fixed level), so the same
input gives the same digests. Each layer is streamed through the compressor into a
temporary file while its uncompressed digest is checked against the config's
``rootfs.diff_ids``; a mismatch stops the upload before anything is stored.
``RepoTags`` (``name:tag``) become tags.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import tempfile
import zlib
from typing import IO, Any

from reconciler.errors import DigestMismatch, InvalidInput, UploadInvalid
from reconciler.model import Digest, DigestHasher, Manifest, jsonsafe, parse_reference
from reconciler.model import mediatypes as mt
from reconciler.ops.formats.archive import Archive
from reconciler.ops.formats.tarsafe import check_member_name
from reconciler.ops.formats.upload_formats import BlobSource, Parsed, parse_manifest_bytes

CHUNK = 1024 * 1024
#: fixed so digests do not depend on a default that could change
COMPRESSLEVEL = 6
_GZIP_MAGIC = b"\x1f\x8b"


class HashingWriter:
    """A write-only file that hashes and counts what passes through to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.hasher = DigestHasher()

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def read_docker_save(archive: Archive, entries: Any) -> Parsed:
    parsed = Parsed("docker-save")
    if not isinstance(entries, list) or not entries:
        raise UploadInvalid(f"{archive.where}: manifest.json lists no images")
    layers_done: dict[str, tuple[Digest, int]] = {}
    try:
        for i, entry in enumerate(entries):
            where = f"{archive.where}: manifest.json[{i}]"
            m = _image(archive, entry, parsed, layers_done, where=where)
            parsed.add_manifest(m)
            if m.digest not in parsed.roots:
                parsed.roots.append(m.digest)
            for repo_tag in entry.get("RepoTags") or ():
                tag = _tag_of(repo_tag)
                if tag:
                    parsed.add_tag(tag, m.digest, where=where)
    except BaseException:
        parsed.resources.close()
        raise
    return parsed


def _tag_of(repo_tag: object) -> str | None:
    if not isinstance(repo_tag, str) or repo_tag.startswith("<none>"):
        return None
    try:
        return parse_reference(repo_tag).tag
    except InvalidInput:
        return None


def _member(name: object, *, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise UploadInvalid(f"{where}: expected a file name, got {name!r}")
    return check_member_name(name, where=where)


def _image(archive: Archive, entry: Any, parsed: Parsed, layers_done: dict[str, tuple[Digest, int]], *,
           where: str) -> Manifest:
    if not isinstance(entry, dict):
        raise UploadInvalid(f"{where}: expected an object with Config and Layers")
    config_name = _member(entry.get("Config"), where=f"{where}.Config")
    config_raw = archive.read_bytes(config_name)
    config_digest = Digest.of(config_raw)
    try:
        config = jsonsafe.loads(config_raw)
        diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]
    except (ValueError, KeyError, TypeError, InvalidInput) as exc:
        raise UploadInvalid(f"{where}: config {config_name} lacks valid rootfs.diff_ids: {exc}") from exc
    parsed.blobs[config_digest] = BlobSource(config_digest, len(config_raw), functools.partial(io.BytesIO, config_raw),
                                             f"{archive.where}: {config_name}")
    layer_names = entry.get("Layers")
    if not isinstance(layer_names, list) or len(layer_names) != len(diff_ids):
        raise UploadInvalid(f"{where}: Layers must list one file per rootfs.diff_ids entry "
                            f"({len(diff_ids)} in the config)")
    layers = []
    for j, (name, diff_id) in enumerate(zip(layer_names, diff_ids, strict=True)):
        member = _member(name, where=f"{where}.Layers[{j}]")
        if member not in layers_done:
            layers_done[member] = _compress_layer(archive, member, diff_id, parsed)
        digest, size = layers_done[member]
        layers.append({"mediaType": mt.DOCKER_LAYER, "size": size, "digest": str(digest)})
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_SCHEMA2,
        "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(config_raw), "digest": str(config_digest)},
        "layers": layers,
    }
    m = parse_manifest_bytes(json.dumps(doc, indent=3).encode(), where=where)
    assert isinstance(m, Manifest)
    return m


def gzip_layer(archive: Archive, name: str, writer: HashingWriter, uncompressed: DigestHasher) -> None:
    """Member ``name`` of ``archive``, gzip'd, into ``writer``: kept as it is when already
    gzip'd (some tools save gzip'd layers), else compressed reproducibly (mtime 0, fixed
    level); the uncompressed bytes go through ``uncompressed`` (a diff_id, a v1 size)."""
    with archive.open(name) as src:
        head = src.read(2)
        if head == _GZIP_MAGIC:
            # inflate at most CHUNK at a time (one 1 MiB chunk of a gzip bomb is 1 GiB),
            # and no more in all than the archive's ratio bound allows
            cap = archive.limits.declared_cap(archive.size(name))
            inflate = zlib.decompressobj(wbits=31)
            chunk = head
            while chunk:
                writer.write(chunk)
                while chunk:
                    uncompressed.update(inflate.decompress(chunk, CHUNK))
                    if uncompressed.size > cap:
                        raise UploadInvalid(
                            f"{archive.where}: layer {name} decompresses to more than {cap} bytes, over "
                            f"{archive.limits.ratio} times its size (a decompression bomb?)",
                            hint="nothing was stored; recreate the file with docker save")
                    chunk = inflate.unconsumed_tail
                chunk = src.read(CHUNK)
        else:
            with gzip.GzipFile(filename="", mode="wb", fileobj=writer, mtime=0,
                               compresslevel=COMPRESSLEVEL) as gz:
                chunk = head
                while chunk:
                    uncompressed.update(chunk)
                    gz.write(chunk)
                    chunk = src.read(CHUNK)


def _compress_layer(archive: Archive, name: str, diff_id: Digest, parsed: Parsed) -> tuple[Digest, int]:
    """Gzip ``name`` reproducibly into a temp file, checking its uncompressed digest."""
    tmp = parsed.resources.enter_context(tempfile.TemporaryFile(prefix="reconciler-layer-"))
    writer = HashingWriter(tmp)
    uncompressed = DigestHasher(diff_id.algorithm)
    gzip_layer(archive, name, writer, uncompressed)
    tmp.flush()  # the store reads it through another descriptor
    actual = uncompressed.digest()
    if actual != diff_id:
        raise DigestMismatch(str(diff_id), str(actual), where=f"{archive.where}: layer {name} (diff_id)")
    digest, size = writer.hasher.digest(), writer.hasher.size
    parsed.blobs[digest] = BlobSource(digest, size, lambda: _reopen(tmp), f"{archive.where}: {name} (gzip)")
    return digest, size


def _reopen(tmp: IO[bytes]) -> IO[bytes]:
    """A fresh reader over the temp file (the store closes what it is given); a dup'ed
    descriptor shares the offset, so rewind it."""
    f = os.fdopen(os.dup(tmp.fileno()), "rb", closefd=True)
    f.seek(0)
    return f
