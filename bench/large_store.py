"""The large-store generator: ``repos`` repositories x ``manifests`` manifests of their own
(default 5,000 x 20 = 100,000 manifests), written through the store API into any store
(SQLite, or PostgreSQL with blobs in a folder), with the ``repos.yaml`` whose no-change
plan it is.

Repository ``rNNNNN`` syncs ``scale/rNNNNN`` from a feed nobody listens on, holds tags
``t0..`` on manifests no other repository has (a config blob each, one layer from a
shared pool of ``LAYER_POOL``: content both unique and shared, as mirrored images are),
and is published as ``large/rNNNNN``. Everything in one version per repository.

Only for speed, and only in this throwaway store: the SQLite store is opened with
``durable=False`` and a PostgreSQL store's blob folder skips its fsyncs (the test server
already runs with ``fsync=off``); repositories are written in chunks of ``CHUNK`` per
content batch. The measured commands then run in fresh processes with the store's own
settings.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from reconciler.model import Digest, parse_manifest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.store.protocol import Store

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
LAYER_POOL = 50
CHUNK = 100


def repo_id(i: int) -> str:
    return f"r{i:05d}"


def publish_name(i: int) -> str:
    return f"large/{repo_id(i)}"


def open_fast(location: str, blobs: str | None) -> Store:
    """The store to fill, with its fsyncs off (see the module docstring)."""
    if location.startswith("postgresql://"):
        from reconciler.store.postgres import PostgresStore

        assert blobs is not None
        store: Any = PostgresStore(location, blobs=blobs)
        for files in (store.blob_files, store.manifest_files):
            if hasattr(files, "durable"):
                files.durable = False
        return store  # type: ignore[no-any-return]
    from reconciler.store.sqlite import SQLiteStore

    return SQLiteStore(location, durable=False)


def populate(store: Store, feed: str, repos: int, manifests: int) -> dict[str, float]:
    t0 = time.monotonic()
    layers = []
    with store.content_batch() as batch:
        for k in range(LAYER_POOL):
            data = f"large-store layer {k}\n".encode() * 256
            layers.append((Digest.of(data), len(data)))
            batch.blob_put(io.BytesIO(data), layers[-1][0], size=len(data))
        batch.commit()
    for start in range(0, repos, CHUNK):
        chunk = range(start, min(repos, start + CHUNK))
        held: dict[int, list[tuple[Any, Digest, Digest]]] = {}
        with store.content_batch() as batch:
            for i in chunk:
                held[i] = []
                for j in range(manifests):
                    config = json.dumps({"architecture": "amd64", "os": "linux", "repo": i, "n": j}).encode()
                    cfg_d = Digest.of(config)
                    batch.blob_put(io.BytesIO(config), cfg_d, size=len(config))
                    layer_d, layer_n = layers[(i * manifests + j) % LAYER_POOL]
                    raw = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                                      "config": {"mediaType": DOCKER_CONFIG, "size": len(config),
                                                 "digest": str(cfg_d)},
                                      "layers": [{"mediaType": DOCKER_LAYER, "size": layer_n,
                                                  "digest": str(layer_d)}]}).encode()
                    held[i].append((parse_manifest(raw, DOCKER_MANIFEST), cfg_d, layer_d))
            batch.manifests_put([m for k in chunk for m, _, _ in held[k]])
            batch.commit()
        for i in chunk:
            rid = repo_id(i)
            store.repository_create(rid, feed=feed, upstream_name=f"scale/{rid}")
            content = ContentSet(blobs=frozenset(d for _, c, layer in held[i] for d in (c, layer)),
                                 manifests=frozenset(m.digest for m, _, _ in held[i]))
            tags = {f"t{j}": TagEntry(m.digest, Origin.SYNC) for j, (m, _, _) in enumerate(held[i])}
            info = store.version_commit(rid, base=0, content=content, tags=tags, operation="sync")
            assert info is not None
            store.publish(rid, name=publish_name(i), version=info.number, protected=False)
    return {"populate_s": round(time.monotonic() - t0, 1)}


def write_yaml(path: Path, feed: str, repos: int, manifests: int) -> None:
    """The desired state the populated store already is (its plan has no actions)."""
    tag_list = ", ".join(f"t{j}" for j in range(manifests))
    with open(path, "w") as f:
        f.write(f"version: 1\nregistries:\n  upstream:\n    url: {feed}\nrepositories:\n")
        for i in range(repos):
            f.write(f"  {repo_id(i)}:\n    feed: upstream\n    upstream_name: scale/{repo_id(i)}\n"
                    f"    tags: {{include: [{tag_list}]}}\n    publish: {publish_name(i)}\n")
