"""One image with one large layer (default 1 GiB) for the memory section.

The layer is written to a file in 8 MiB chunks of deterministic random bytes (never held
in memory), hashed, and streamed to the registry, so the harness itself stays small while
the layer is as large as asked. The layer is raw random bytes declared as a gzip layer:
neither a sync nor a registry server looks inside layers.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from bench.fixtures import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, Pusher, jbytes, sha256

CHUNK = 8 << 20


def write_layer(path: Path, size: int, seed: int = 1) -> str:
    rnd = random.Random(f"{seed}:big")
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = rnd.randbytes(min(CHUNK, left))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return "sha256:" + h.hexdigest()


def push_big(pusher: Pusher, repo: str, layer_file: Path, size: int, seed: int = 1) -> dict[str, object]:
    """Write, push and tag ``repo:latest``; returns digests and sizes."""
    digest = write_layer(layer_file, size, seed)

    with open(layer_file, "rb") as f:  # a file object: requests streams it with a Content-Length
        pusher.blob(repo, digest, f, size)
    config = jbytes({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest]}})
    pusher.blob(repo, sha256(config), config, len(config))
    raw = jbytes({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                  "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": sha256(config)},
                  "layers": [{"mediaType": DOCKER_LAYER, "size": size, "digest": digest}]})
    pusher.manifest(repo, "latest", DOCKER_MANIFEST, raw)
    return {"repo": repo, "tag": "latest", "manifest": sha256(raw), "layer": digest, "layer_size": size}
