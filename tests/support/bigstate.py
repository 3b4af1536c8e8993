"""A big desired state and a store that already holds it, for plan-scale tests and the
benchmark (issue 8: 1,000 repositories x 50 tags, and 10,000 x 10, ``plan --no-refresh``).

``generate(store_dir, yaml_path, repos=..., tags=...)`` writes ``repos.yaml`` and fills a
store so that the plan is (nearly) "No changes": every repository is synced from one
feed, published, and every tenth copies a tag from repository 0, as a real mirror
setup would. Content per repository: ``tags`` OCI image manifests (config + a shared
base layer + a per-repository layer; each manifest unique through an annotation) and,
every tenth tag, an OCI index over two platform manifests instead. Deterministic: same
arguments, same digests.

The store is written with ``durable=False`` (no fsync), which is fine for a fixture and
makes 50,000 manifests a matter of seconds. Nothing here needs a network.

    python -m tests.support.bigstate --repos 1000 --tags 50 --out /tmp/big
    reconciler --store /tmp/big/store plan -f /tmp/big/repos.yaml --no-refresh
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

from reconciler.model import Digest, Index, Manifest, parse_manifest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.store.sqlite import SQLiteStore

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FEED_URL = "http://127.0.0.1:9"  # never contacted: the plan runs with --no-refresh


def repo_name(i: int) -> str:
    return f"repo-{i:05d}"


def tag_name(t: int) -> str:
    return f"v{t:03d}"


def _blob(store: SQLiteStore, data: bytes) -> dict[str, object]:
    d = Digest.of(data)
    if store.blobs_missing([d]):
        store.blob_put(io.BytesIO(data), d, size=len(data))
    return {"digest": str(d), "size": len(data)}


def _canonical(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _image(store: SQLiteStore, config: dict[str, object], layers: list[dict[str, object]], note: str) -> Manifest:
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": OCI_CONFIG, **config},
           "layers": [{"mediaType": OCI_LAYER, **layer} for layer in layers],
           "annotations": {"org.example.tag": note}}
    m = parse_manifest(_canonical(doc), OCI_MANIFEST)
    assert isinstance(m, Manifest)
    return m


def generate(store_dir: Path, yaml_path: Path, *, repos: int, tags: int, index_every: int = 10,
             copy_every: int = 10) -> dict[str, int]:
    """Write ``yaml_path`` and fill the store at ``store_dir``; returns counts."""
    store = SQLiteStore(store_dir, durable=False)
    counts = {"repositories": repos, "tags": 0, "manifests": 0, "indexes": 0, "blobs": 0}
    try:
        bases = [_blob(store, f"base layer {b}".encode() * 64) for b in range(4)]
        copied: tuple[Manifest, frozenset[Digest]] | None = None  # repository 0's first tag
        for i in range(repos):
            rid = repo_name(i)
            config = _blob(store, _canonical({"architecture": "amd64", "os": "linux", "repo": rid}))
            layer = _blob(store, f"layer of {rid}".encode() * 32)
            base = bases[i % len(bases)]
            manifests: list[Manifest | Index] = []
            tag_map: dict[str, TagEntry] = {}
            copies_first = bool(copy_every and i and i % copy_every == 0 and copied)
            for t in range(tags):
                tag = tag_name(t)
                if t == 0 and copies_first and copied is not None:
                    tag_map[tag] = TagEntry(copied[0].digest, Origin.COPY)  # as the copy in repos.yaml does
                elif index_every and t % index_every == index_every - 1:
                    children = [_image(store, config, [base, layer], f"{rid}:{tag}:{arch}") for arch in ("amd64", "arm64")]
                    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
                        {"mediaType": OCI_MANIFEST, "digest": str(c.digest), "size": len(c.raw),
                         "platform": {"architecture": arch, "os": "linux"}}
                        for c, arch in zip(children, ("amd64", "arm64"), strict=True)]}
                    index = parse_manifest(_canonical(doc), OCI_INDEX)
                    manifests += [*children, index]
                    tag_map[tag] = TagEntry(index.digest, Origin.SYNC)
                else:
                    m = _image(store, config, [base, layer], f"{rid}:{tag}")
                    manifests.append(m)
                    tag_map[tag] = TagEntry(m.digest, Origin.SYNC)
            store.manifests_put(manifests)
            blobs = frozenset(Digest.parse(str(b["digest"])) for b in (config, layer, base))
            if i == 0 and manifests and isinstance(manifests[0], Manifest):
                copied = (manifests[0], blobs)
            if copies_first and copied is not None:
                manifests.append(copied[0])
                blobs |= copied[1]
            content = ContentSet(
                blobs=blobs,
                manifests=frozenset(m.digest for m in manifests if isinstance(m, Manifest)),
                indexes=frozenset(m.digest for m in manifests if isinstance(m, Index)))
            store.repository_create(rid, feed=FEED_URL, upstream_name=f"mirror/{rid}")
            store.version_commit(rid, base=0, content=content, tags=tag_map, operation="generated")
            store.publish(rid, name=f"big/{rid}", version=1, protected=False)
            counts["tags"] += len(tag_map)
            counts["manifests"] += len(content.manifests)
            counts["indexes"] += len(content.indexes)
            counts["blobs"] += 2
        counts["blobs"] += len(bases)
    finally:
        store.close()
    yaml_path.write_text(desired_yaml(repos, tags, copy_every=copy_every))
    return counts


def desired_yaml(repos: int, tags: int, *, copy_every: int = 10) -> str:
    """The desired state the generated store already satisfies (``--no-refresh``)."""
    lines = ["version: 1", "registries:", "  up:", f"    url: {FEED_URL}", "    tls_verify: false",
             "repositories:"]
    for i in range(repos):
        rid = repo_name(i)
        copies = bool(copy_every and i and i % copy_every == 0 and tags)
        exclude = f"[\"*-rc*\", {tag_name(0)}]" if copies else "[\"*-rc*\"]"
        lines += [f"  {rid}:", "    feed: up", f"    upstream_name: mirror/{rid}",
                  f"    tags: {{include: [\"v*\"], exclude: {exclude}}}", f"    publish: big/{rid}"]
        if copies:  # the first tag comes from repository 0 instead of the feed
            lines += ["    copy:", f"      - {{from: {repo_name(0)}, tags: [{tag_name(0)}]}}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--tags", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True, help="directory for store/ and repos.yaml")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    counts = generate(args.out / "store", args.out / "repos.yaml", repos=args.repos, tags=args.tags)
    print(json.dumps({**counts, "seconds": round(time.monotonic() - started, 1),
                      "store": str(args.out / "store"), "desired": str(args.out / "repos.yaml")}))


if __name__ == "__main__":
    main()
