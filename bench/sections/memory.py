"""Section 5, memory: one image with one large layer (default 1 GiB, ``--big-layer-size``).

* ``sync``: peak RSS (GNU time, see ``proc.py``) of our sync/apply of that one image into a fresh store,
  with its wall time and MB/s;
* ``serve``: peak RSS of a fresh ``reconciler serve`` (workers included) while
  ``big_clients`` concurrent clients (curl) each GET the layer once, next to the
  distribution registry serving the same layer to the same clients (its peak RSS is since
  its start, so it is an upper bound).
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from bench import desired, proc
from bench.big import push_big
from bench.fixtures import Pusher
from bench.harness import Context, SectionError, require_commands, require_tool
from bench.sections.cold_sync import _measure
from bench.sections.serving import ensure_published, start_server, tree_peak_rss_kib

REPO = "big/one"


def parallel_get(url: str, n: int, expect: int) -> dict[str, Any]:
    """``n`` concurrent curl processes each GET ``url`` once to /dev/null."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", url],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(n)]
    sizes = []
    for p in procs:
        out, err = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise SectionError(f"curl {url} exited {p.returncode}: {err.decode()[-500:]}")
        sizes.append(int(out or 0))
    wall = time.perf_counter() - t0
    if any(s != expect for s in sizes):
        raise SectionError(f"GET {url}: sizes {sizes}, expected {expect} each")
    return {"clients": n, "wall_s": round(wall, 2), "mb_per_s": round(sum(sizes) / wall / 1e6, 1)}


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_tool("curl", "curl")
    size = ctx.params.big_layer_size
    pusher = Pusher(ctx.upstream.url)
    try:
        big = push_big(pusher, REPO, ctx.work / "big-layer.bin", size, ctx.params.seed)
    finally:
        pusher.close()
    (ctx.work / "big-layer.bin").unlink()
    out.update({"layer_bytes": size})
    blob_path = f"/v2/{REPO}/blobs/{big['layer']}"
    n = ctx.params.big_clients
    out["registry_serve"] = parallel_get(ctx.upstream.url + blob_path, n, size)
    out["registry_serve"]["peak_rss_mb"] = round(ctx.upstream.peak_rss_kib() / 1024, 1)
    store = ctx.work / "big-store"
    yaml = ctx.work / "big.yaml"
    if ctx.params.ours == "apply":
        require_commands(("apply",))
        desired.write_mirror(yaml, ctx.upstream.url, [REPO])
        runner = lambda: proc.reconciler(store, "apply", "-f", str(yaml))  # noqa: E731
    else:
        require_commands(("sync",))
        runner = lambda: proc.reconciler(store, "sync", desired.repo_id(REPO), "--feed",  # noqa: E731
                                         ctx.upstream.url, "--upstream-name", REPO)
    out["sync"] = _measure(ctx, runner)
    if out["sync"]["get_bytes"] < size:
        raise SectionError(f"the sync pulled {out['sync']['get_bytes']} bytes, less than the {size}-byte layer")

    require_commands(("serve",))
    ensure_published(store, [REPO])
    url, server = start_server(ctx, store, "serve-big")
    idle = tree_peak_rss_kib(server.pid)
    out["serve"] = parallel_get(url + blob_path, n, size)
    out["serve"]["peak_rss_mb"] = round(tree_peak_rss_kib(server.pid) / 1024, 1)
    out["serve"]["idle_peak_rss_mb"] = round(idle / 1024, 1)
    proc.stop_server(server)
