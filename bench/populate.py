"""Fill a store directly through the store API (no registry, no network) for the plan-scale
section: ``repos`` repositories, each with ``tags`` tags ``t0..`` synced from
``<upstream>/scale/rNNNNN``, over a pool of small synthetic manifests shared between
repositories (content is deduplicated store-wide, as mirrored base images are).

For speed only, the populating connection runs with ``PRAGMA synchronous=OFF``: it is a
throwaway store, and the measured ``plan`` runs in a fresh process with the store's own
settings.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from reconciler.model import Digest, parse_manifest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.store.sqlite import SQLiteStore

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
POOL = 200  # distinct manifests; repository i tag j uses manifest (i + j) % POOL


def populate(root: Path, upstream_url: str, repos: int, tags: int) -> dict[str, float]:
    t0 = time.monotonic()
    store = SQLiteStore(root)
    try:
        store._conn().execute("PRAGMA synchronous=OFF")  # noqa: SLF001 - see the module docstring
        layer = b"shared layer bytes"
        layer_d = Digest.of(layer)
        store.blob_put(io.BytesIO(layer), layer_d, size=len(layer))
        pool = []
        for k in range(min(POOL, repos + tags)):
            config = json.dumps({"architecture": "amd64", "os": "linux", "n": k}).encode()
            cfg_d = Digest.of(config)
            store.blob_put(io.BytesIO(config), cfg_d, size=len(config))
            raw = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                              "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                         "size": len(config), "digest": str(cfg_d)},
                              "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                          "size": len(layer), "digest": str(layer_d)}]}).encode()
            m = parse_manifest(raw, DOCKER_MANIFEST)
            store.manifest_put(m)
            pool.append((m.digest, cfg_d))
        for i in range(repos):
            rid = f"r{i:05d}"
            store.repository_create(rid, feed=upstream_url, upstream_name=f"scale/{rid}")
            chosen = [pool[(i + j) % len(pool)] for j in range(tags)]
            content = ContentSet(blobs=frozenset([layer_d, *(c for _, c in chosen)]),
                                 manifests=frozenset(m for m, _ in chosen))
            tag_map = {f"t{j}": TagEntry(chosen[j][0], Origin.SYNC) for j in range(tags)}
            store.version_commit(rid, base=0, content=content, tags=tag_map, operation="sync")
    finally:
        store.close()
    return {"populate_s": round(time.monotonic() - t0, 2)}


def populate_history(root: Path, repos: int, manifests: int, versions: int) -> dict[str, float]:
    """A store for the ``store du`` section: ``repos`` repositories, each with
    ``manifests`` distinct manifests of its own (a config blob each, layers from a shared
    pool of 20) spread over ``versions`` versions: every version keeps 80% of the
    repository's tags and moves the rest to manifests no earlier version had, so the
    store has live content, content only old versions hold, and content shared between
    repositories. Through the store API with ``durable=False`` (a throwaway store)."""
    t0 = time.monotonic()
    store = SQLiteStore(root, durable=False)
    try:
        layers = []
        with store.content_batch() as batch:
            for k in range(20):
                data = f"shared layer {k}".encode() * 64
                layers.append((Digest.of(data), len(data)))
                batch.blob_put(io.BytesIO(data), layers[-1][0], size=len(data))
            batch.commit()
        window = max(1, manifests * 4 // 5)
        step = (manifests - window) // max(1, versions - 1)
        for i in range(repos):
            rid = f"r{i:05d}"
            store.repository_create(rid)
            own = []
            with store.content_batch() as batch:
                for j in range(manifests):
                    config = json.dumps({"architecture": "amd64", "os": "linux", "repo": rid, "n": j}).encode()
                    cfg_d = Digest.of(config)
                    batch.blob_put(io.BytesIO(config), cfg_d, size=len(config))
                    layer_d, layer_n = layers[(i + j) % len(layers)]
                    raw = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                                      "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                                 "size": len(config), "digest": str(cfg_d)},
                                      "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                                  "size": layer_n, "digest": str(layer_d)}]}).encode()
                    m = parse_manifest(raw, DOCKER_MANIFEST)
                    own.append((m, cfg_d, layer_d))
                batch.manifests_put([m for m, _, _ in own])
                batch.commit()
            for v in range(versions):
                live = own[v * step:v * step + window]
                content = ContentSet(blobs=frozenset(d for _, c, layer in live for d in (c, layer)),
                                     manifests=frozenset(m.digest for m, _, _ in live))
                tags = {f"t{k}": TagEntry(m.digest, Origin.SYNC) for k, (m, _, _) in enumerate(live)}
                store.version_commit(rid, base=v, content=content, tags=tags, operation="sync")
    finally:
        store.close()
    return {"populate_s": round(time.monotonic() - t0, 2)}
