"""Upload files built by the test suite from ``imagegen`` images: skopeo ``dir:`` tarballs
(transport versions 1.0 and 1.1), OCI image layouts (directory or tar), ``docker save``
tarballs, and hostile tars (traversal, links, devices, absurd sizes)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from reconciler.model import Index, Manifest
from tests.support.imagegen import MTIME, Image, sha


def write_tar(path: Path, files: dict[str, bytes], *, prefix: str = "") -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def skopeo_dir_files(image: Image, *, version: str = "1.1", omit: Iterable[str] = ()) -> dict[str, bytes]:
    """What ``skopeo copy ... dir:D`` writes: manifest.json, version, blobs by hex name."""
    suffix = ".tar" if version == "1.0" else ""
    files = {"manifest.json": image.manifest.raw,
             "version": f"Directory Transport Version: {version}\n".encode()}
    skip = set(omit)
    for digest, data in image.all_blobs().items():
        if digest not in skip:
            files[digest.split(":", 1)[1] + suffix] = data
    return files


def skopeo_dir_tar(path: Path, image: Image, *, version: str = "1.1", omit: Iterable[str] = (),
                   prefix: str = "") -> Path:
    return write_tar(path, skopeo_dir_files(image, version=version, omit=omit), prefix=prefix)


def _manifests(image: Image) -> list[Manifest | Index]:
    """Every manifest and index under ``image``, nested indexes included."""
    out: list[Manifest | Index] = [image.manifest]
    for child in image.children:
        out += _manifests(child)
    return out


def oci_layout_files(entries: Sequence[tuple[Image, str | None]]) -> dict[str, bytes]:
    """An OCI image layout holding ``entries`` (image, ref name annotation or None)."""
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    descs = []
    for image, ref in entries:
        for digest, data in image.all_blobs().items():
            files[f"blobs/sha256/{digest.split(':', 1)[1]}"] = data
        for m in _manifests(image):
            files[f"blobs/sha256/{m.digest.hex}"] = m.raw
        d = {"mediaType": image.manifest.media_type, "digest": str(image.digest), "size": len(image.manifest.raw)}
        if ref:
            d["annotations"] = {"org.opencontainers.image.ref.name": ref}
        descs.append(d)
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": descs}).encode()
    return files


def oci_layout_dir(path: Path, entries: Sequence[tuple[Image, str | None]]) -> Path:
    for name, data in oci_layout_files(entries).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def docker_save_tar(path: Path, images: Sequence[tuple[Image, list[str]]], *, corrupt_layer: bool = False) -> Path:
    """A ``docker save`` tarball: per image a config ``<hex>.json`` and uncompressed
    ``<n>/layer.tar`` files, plus ``manifest.json`` with RepoTags."""
    files: dict[str, bytes] = {}
    entries = []
    for image, repo_tags in images:
        m = image.manifest
        assert isinstance(m, Manifest) and m.config is not None
        config = image.blobs[str(m.config.digest)]
        files[f"{m.config.digest.hex}.json"] = config
        layer_names = []
        for layer in m.layers:
            raw = gzip.decompress(image.blobs[str(layer.digest)])
            if corrupt_layer:
                raw = raw[:-1] + bytes([raw[-1] ^ 1])
            name = f"{sha(raw).split(':')[1]}/layer.tar"
            files[name] = raw
            layer_names.append(name)
        entries.append({"Config": f"{m.config.digest.hex}.json", "RepoTags": repo_tags, "Layers": layer_names})
    files["manifest.json"] = json.dumps(entries).encode()
    return write_tar(path, files)


#: every kind ``hostile_tar`` makes
HOSTILE_KINDS = ["absolute", "traversal", "nested-traversal", "symlink-out", "symlink-abs", "symlink-deep-out",
                 "hardlink-out", "hardlink-abs", "device", "block-device", "fifo", "huge"]


def hostile_tar(path: Path, kind: str, base: dict[str, bytes]) -> Path:
    """A tar with ``base`` plus one hostile member of ``kind``."""
    with tarfile.open(path, "w") as tf:
        for name, data in base.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo({"absolute": "/etc/evil", "traversal": "../evil", "nested-traversal": "a/../../evil",
                                "symlink-out": "evil-link", "symlink-abs": "abs-link", "hardlink-out": "hard",
                                "symlink-deep-out": "a/b/link", "hardlink-abs": "hard-abs",
                                "device": "dev", "block-device": "blk", "fifo": "fifo", "huge": "huge"}[kind])
        if kind == "symlink-out":
            info.type, info.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        elif kind == "symlink-abs":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "symlink-deep-out":
            info.type, info.linkname = tarfile.SYMTYPE, "../../../etc/passwd"  # one level too many
        elif kind == "hardlink-out":
            info.type, info.linkname = tarfile.LNKTYPE, "../outside"
        elif kind == "hardlink-abs":
            info.type, info.linkname = tarfile.LNKTYPE, "/etc/shadow"
        elif kind == "block-device":
            info.type, info.devmajor, info.devminor = tarfile.BLKTYPE, 8, 0
        elif kind == "device":
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
        if kind == "huge":
            # a header claiming 1 TiB; the data is not there (the check must not need it)
            info.size = 1 << 40
            tf.fileobj.write(info.tobuf(tarfile.GNU_FORMAT))
            return path
        data = b"x" * 16 if info.isfile() else b""
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data) if data else None)
    return path


def member_bytes(tar: tarfile.TarFile, member: str | tarfile.TarInfo) -> bytes:
    """The content of a regular file in ``tar`` (a test failure naming it otherwise)."""
    f = tar.extractfile(member)
    assert f is not None, f"{member} is not a regular file in {tar.name!r}"
    with f:
        return f.read()
