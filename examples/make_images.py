#!/usr/bin/env python3
"""Make the tiny images that examples/demo.yaml uploads, byte for byte reproducibly.

    python3 examples/make_images.py [OUTDIR]      # default: examples/images

Writes two files (a few KB each), the same bytes on every run (fixed mtimes, owners and
order in every tar, gzip with mtime 0), so their digests can be pinned in demo.yaml:

- hello-multiarch-oci.tar: an OCI image layout as a tar (skopeo's ``oci-archive:``) holding
  one OCI index for linux/amd64 and linux/arm64/v8, tagged ``1.0`` through the
  ``org.opencontainers.image.ref.name`` annotation in index.json;
- hello-v2s2.tar: a Docker schema2 image as skopeo's ``dir:`` transport writes it and
  Pulp's upload took it (``skopeo copy --format v2s2 ... dir:D && tar -cf x.tar -C D .``):
  ``manifest.json``, ``version`` and the blobs named by bare hex digest.

Only the standard library is used, so the script runs on a fresh machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

MTIME = 1700000000  # 2023-11-14T22:13:20Z, also the images' "created" time
CREATED = "2023-11-14T22:13:20Z"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def to_json(obj: object) -> bytes:
    return json.dumps(obj, indent=2).encode() + b"\n"


def tar_bytes(files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> bytes:
    """An uncompressed tar with fixed metadata, members in sorted order.

    It ends right after the two zero blocks that mark the end of the archive: tarfile
    would pad it to a 10 KiB record, which only makes the committed files bigger.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        entries = [(d, None) for d in dirs] + list(files.items())
        for name, data in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
        end = tf.offset + 2 * tarfile.BLOCKSIZE
    return buf.getvalue()[:end]


def layer(text: str) -> tuple[bytes, str]:
    """A gzip'd one-file layer; returns (blob, diff_id)."""
    raw = tar_bytes({"hello.txt": text.encode()})
    return gzip.compress(raw, compresslevel=9, mtime=0), sha256(raw)


def image(arch: str, variant: str | None, *, oci: bool) -> tuple[bytes, dict[str, bytes]]:
    """One image: (manifest bytes, blobs by digest)."""
    platform = f"linux/{arch}" + (f"/{variant}" if variant else "")
    blob, diff_id = layer(f"hello from the reconciler demo ({platform})\n")
    config = to_json({
        "architecture": arch, "os": "linux", **({"variant": variant} if variant else {}),
        "created": CREATED,
        "config": {"Env": ["PATH=/"], "Cmd": ["/hello.txt"], "Labels": {"org.example.demo": "hello"}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": "make_images.py: add hello.txt"}],
    })
    manifest = to_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "size": len(config), "digest": sha256(config)},
        "layers": [{"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "size": len(blob), "digest": sha256(blob)}],
    })
    return manifest, {sha256(config): config, sha256(blob): blob}


def oci_archive() -> bytes:
    blobs: dict[str, bytes] = {}
    entries = []
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        manifest, image_blobs = image(arch, variant, oci=True)
        blobs.update(image_blobs)
        blobs[sha256(manifest)] = manifest
        platform = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
        entries.append({"mediaType": OCI_MANIFEST, "size": len(manifest), "digest": sha256(manifest),
                        "platform": platform})
    index = to_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    blobs[sha256(index)] = index
    layout_index = to_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_INDEX, "size": len(index), "digest": sha256(index),
         "annotations": {"org.opencontainers.image.ref.name": "1.0"}},
    ]})
    files = {f"blobs/sha256/{d.split(':', 1)[1]}": data for d, data in blobs.items()}
    files["oci-layout"] = to_json({"imageLayoutVersion": "1.0.0"})
    files["index.json"] = layout_index
    return tar_bytes(files, dirs=("blobs", "blobs/sha256"))


def dir_tarball() -> bytes:
    manifest, blobs = image("amd64", None, oci=False)
    files = {d.split(":", 1)[1]: data for d, data in blobs.items()}
    files["manifest.json"] = manifest
    files["version"] = b"Directory Transport Version: 1.1\n"
    return tar_bytes(files)


OUTPUTS = {"hello-multiarch-oci.tar": oci_archive, "hello-v2s2.tar": dir_tarball}


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "images"
    out.mkdir(parents=True, exist_ok=True)
    for name, make in OUTPUTS.items():
        data = make()
        (out / name).write_bytes(data)
        print(f"{out / name}: {len(data)} bytes, {sha256(data)}")


if __name__ == "__main__":
    main(sys.argv)
