"""Docker v1 ``docker save`` tarballs built by the test suite: a chain of images (root
first), each with a small layer, an image JSON with ``id``/``parent``, in the legacy
layout (``repositories`` + ``<id>/{VERSION,json,layer.tar}``) or the layout Docker 1.10-24
wrote (the same, plus ``manifest.json`` and ``<sha>.json`` configs)."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tests.support.archives import write_tar
from tests.support.imagegen import make_layer


@dataclass(frozen=True)
class V1Chain:
    """Image ids root first, their JSON bytes and uncompressed layer tars, and the tags."""

    repo: str
    ids: tuple[str, ...]
    jsons: dict[str, bytes]
    layers: dict[str, bytes]
    tags: dict[str, str]

    @property
    def leaf(self) -> str:
        return self.ids[-1]

    def ancestry(self, image_id: str) -> list[str]:
        i = self.ids.index(image_id)
        return list(reversed(self.ids[:i + 1]))


def build_chain(name: str = "tutorial", *, length: int = 5, tags: dict[str, int] | None = None) -> V1Chain:
    """``length`` images, each the parent of the next; ``tags`` maps a tag to an index
    into the chain (default: ``latest`` on the leaf)."""
    ids: list[str] = []
    jsons: dict[str, bytes] = {}
    layers: dict[str, bytes] = {}
    for i in range(length):
        image_id = hashlib.sha256(f"v1:{name}:{i}".encode()).hexdigest()
        gzipped, _diff_id = make_layer({f"{name}/layer{i}.txt": f"{name} layer {i}\n".encode() * (i + 1)})
        layer = gzip.decompress(gzipped)  # docker save writes uncompressed layer tars
        doc: dict[str, object] = {"id": image_id, "created": "2016-01-01T00:00:00Z",
                                  "container_config": {"Cmd": [f"/bin/sh -c #(nop) step {i}"]},
                                  "Size": len(layer)}
        if ids:
            doc["parent"] = ids[-1]
        jsons[image_id] = json.dumps(doc).encode()
        layers[image_id] = layer
        ids.append(image_id)
    tag_map = {t: ids[i] for t, i in (tags or {"latest": length - 1}).items()}
    return V1Chain(name, tuple(ids), jsons, layers, tag_map)


def v1_save_files(chain: V1Chain, *, modern: bool = False, repositories: bool = True) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if repositories:
        files["repositories"] = json.dumps({chain.repo: chain.tags}).encode()
    for image_id in chain.ids:
        files[f"{image_id}/VERSION"] = b"1.0"
        files[f"{image_id}/json"] = chain.jsons[image_id]
        files[f"{image_id}/layer.tar"] = chain.layers[image_id]
    if modern:
        entries = []
        for tag, image_id in sorted(chain.tags.items()):
            upto = chain.ids[:chain.ids.index(image_id) + 1]
            diff_ids = ["sha256:" + hashlib.sha256(chain.layers[i]).hexdigest() for i in upto]
            config = json.dumps({"architecture": "amd64", "os": "linux",
                                 "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
            config_name = hashlib.sha256(config).hexdigest() + ".json"
            files[config_name] = config
            entries.append({"Config": config_name, "RepoTags": [f"{chain.repo}:{tag}"],
                            "Layers": [f"{i}/layer.tar" for i in upto]})
        files["manifest.json"] = json.dumps(entries).encode()
    return files


def v1_save_tar(path: Path, chain: V1Chain, *, modern: bool = False, repositories: bool = True) -> Path:
    return write_tar(path, v1_save_files(chain, modern=modern, repositories=repositories))
