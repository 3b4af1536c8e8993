"""Section: cold sync of large layers. A second fixture set (``big_shape``, default 4
repositories x 2 tags x 3 layers of 16 MiB: 18 unique layers, about 300 MB) in a registry of
its own, synced cold by the clients of the ``cold_sync`` section: curl fetching every unique
blob once (the physical limit; and into fsynced files, the durable limit), ``skopeo sync --dest dir``, regsync (where present) and
``reconciler apply``. With large layers the per-request costs fade and what is left is
moving bytes: hashing, copying, writing them durably.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Any

from bench import desired, fixtures, proc
from bench.harness import Context, SectionError, require_commands, require_tool
from bench.registry import Registry
from bench.sections.cold_sync import _measure, raw_durable, raw_fetch, regsync_cold, skopeo_sync, skopeo_yaml


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_tool("curl", "curl")
    require_tool("skopeo", "skopeo")
    require_commands(("apply",))
    repos, tags, layers, size = ctx.params.big_shape
    up = Registry(ctx.work / "upstream-big")
    up.start()
    ctx.cleanups.append(up.stop)
    fs = fixtures.build(repos, tags, layers, size, indexes=min(ctx.params.indexes, repos), seed=ctx.params.seed)
    pusher = fixtures.Pusher(up.url)
    try:
        pusher.push(fs)
    finally:
        pusher.close()
    work = ctx.work / "big"
    work.mkdir()
    # the cold-sync helpers, pointed at this registry and fixture set
    sub = replace(ctx, work=work, upstream=up, fixtures=fs, store=work / "store", repos_yaml=work / "repos.yaml",
                  shared={}, cleanups=ctx.cleanups)
    summary = fs.summary()
    out.update({"shape": {"repos": repos, "tags": tags, "layers": layers, "layer_size": size},
                "tags": summary["tags"], "blobs": summary["blobs"], "unique_blob_bytes": summary["blob_bytes"]})
    out["raw"] = _measure(sub, lambda: raw_fetch(sub))
    out["raw_durable"] = _measure(sub, lambda: raw_durable(sub))
    shutil.rmtree(work / "raw-durable", ignore_errors=True)
    y = skopeo_yaml(sub)
    dir_dest = work / "skopeo-dir"
    dir_dest.mkdir()
    out["skopeo_dir"] = _measure(sub, lambda: skopeo_sync(y, "--dest", "dir", str(dir_dest)))
    shutil.rmtree(dir_dest, ignore_errors=True)
    regsync_cold(sub, out)
    desired.write_mirror(sub.repos_yaml, up.url, list(fs.repos))
    out["ours"] = _measure(sub, lambda: proc.reconciler(sub.store, "apply", "-f", str(sub.repos_yaml)))
    if out["ours"]["get_bytes"] < out["unique_blob_bytes"]:
        raise SectionError(f"our sync pulled {out['ours']['get_bytes']} bytes, less than the "
                           f"{out['unique_blob_bytes']} unique blob bytes: it did not sync everything")
    shutil.rmtree(sub.store, ignore_errors=True)
    up.stop()  # its 300 MB stay on disk until the run ends, its process need not
    out["ratios"] = {
        "skopeo_dir_wall_over_ours": round(out["skopeo_dir"]["wall_s"] / out["ours"]["wall_s"], 2),
        "ours_of_raw_throughput": round(out["raw"]["wall_s"] / out["ours"]["wall_s"], 3),
        "ours_of_raw_durable_throughput": round(out["raw_durable"]["wall_s"] / out["ours"]["wall_s"], 3),
        **({"regsync_wall_over_ours": round(out["regsync"]["wall_s"] / out["ours"]["wall_s"], 2)}
           if "regsync" in out else {}),
    }
