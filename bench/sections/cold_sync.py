"""Section 1, cold sync: everything in the fixture set pulled from the upstream registry
into an empty destination, by

* ``raw``: a plain parallel HTTP client (curl ``--parallel``) fetching every unique blob
  once into /dev/null: the physical limit of loopback plus the registry;
* ``raw_durable``: the same fetch into files, then every file fsynced (a small Python step):
  the limit for a client that must keep the bytes across a crash, as our store does. It
  is a reference row; the targets stay relative to ``raw``;
* ``skopeo_dir``: ``skopeo sync --all --src yaml --dest dir`` into a fresh directory;
* ``skopeo_docker``: ``skopeo sync --all --dest docker`` into a fresh second registry (also
  the base of the no-change refresh section);
* ``regsync``: ``regsync once`` (regclient) into a fresh second registry, where the binary
  is there (``bench/regsync.py``; otherwise ``regsync_note`` says why the row is missing);
* ``ours``: ``reconciler apply -f repos.yaml`` (or one ``reconciler sync`` per repository).

Wall time and client CPU come from the child process, requests and GET body bytes from the
upstream registry's access log; MB/s = upstream bytes / wall.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import desired, proc, regsync
from bench.harness import Context, SectionError, require_commands, require_tool
from bench.registry import Registry


def _measure(ctx: Context, fn: Any) -> dict[str, Any]:
    """Run ``fn() -> proc.Run`` (or a list of them) and account its upstream traffic."""
    subprocess.run(["sync"], check=False)  # flush dirty pages of the previous step
    mark = ctx.upstream.mark()
    runs = fn()
    runs = runs if isinstance(runs, list) else [runs]
    for r in runs:
        r.check()
    traffic = ctx.upstream.traffic_since(mark)
    wall = sum(r.wall_s for r in runs)
    return {"wall_s": round(wall, 3), "cpu_s": round(sum(r.cpu_s for r in runs), 2),
            "peak_rss_mb": round(max(r.peak_rss_kib for r in runs) / 1024, 1),
            "mb_per_s": round(traffic.get_bytes / wall / 1e6, 1), "processes": len(runs), **traffic.to_json()}


def measure_interleaved(ctx: Context, fns: dict[str, Any], runs: int) -> dict[str, dict[str, Any]]:
    """Each of ``fns`` (name -> ``fn`` as for ``_measure``) ``runs`` times, interleaved run by
    run (so all see the same minute of machine load); per name, the run with the median
    wall time, with every run's wall time in ``walls_s``."""
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in fns}
    for i in range(runs):
        for name in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            seen[name].append(_measure(ctx, fns[name]))
    out = {}
    for name, ms in seen.items():
        ordered = sorted(ms, key=lambda m: float(m["wall_s"]))
        out[name] = {**ordered[len(ordered) // 2], "runs": runs, "walls_s": [m["wall_s"] for m in ms]}
    return out


def raw_fetch(ctx: Context, dest: Path | None = None) -> proc.Run:
    """curl, every unique blob once, ``raw_parallel`` connections, into /dev/null or, with
    ``dest``, one file per blob in that folder."""
    fs = ctx.fixtures
    cfg = ctx.work / "curl.cfg"
    seen: set[str] = set()
    with open(cfg, "w") as f:
        for repo, tags in fs.repos.items():
            for digest in tags.values():
                for b in fs.blobs_of(digest):
                    if b not in seen:
                        seen.add(b)
                        target = "/dev/null" if dest is None else str(dest / b.replace(":", "-"))
                        f.write(f'url = "{ctx.upstream.url}/v2/{repo}/blobs/{b}"\noutput = "{target}"\n')
    return proc.run(["curl", "-sS", "--fail", "--parallel", "--parallel-max", str(ctx.params.raw_parallel),
                     "-K", str(cfg)])


# fsync every file of a folder, then the folder: what makes curl's downloads durable
_FSYNC_ALL = """
import os, sys
d = sys.argv[1]
for n in os.listdir(d):
    fd = os.open(os.path.join(d, n), os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
fd = os.open(d, os.O_RDONLY)
os.fsync(fd)
os.close(fd)
"""


def raw_durable(ctx: Context) -> list[proc.Run]:
    """``raw_fetch`` into files of a fresh folder, then each file fsynced: wall and CPU of
    both processes add up (``_measure``)."""
    dest = ctx.work / "raw-durable"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    return [raw_fetch(ctx, dest), proc.run([sys.executable, "-c", _FSYNC_ALL, str(dest)])]


def skopeo_yaml(ctx: Context) -> Path:
    y = ctx.work / "skopeo-sync.yml"
    lines = [f"{ctx.upstream.host}:", "  tls-verify: false", "  images:"]
    lines += [f"    {repo}: []" for repo in ctx.fixtures.repos]
    y.write_text("\n".join(lines) + "\n")
    return y


def skopeo_sync(src_yaml: Path, *dest: str) -> proc.Run:
    return proc.run(["skopeo", "sync", "--all", "--src", "yaml", str(src_yaml), *dest])


def ours_cold(ctx: Context, store: Path) -> list[proc.Run]:
    names = list(ctx.fixtures.repos)
    if ctx.params.ours == "apply":
        desired.write_mirror(ctx.repos_yaml, ctx.upstream.url, names)
        return [proc.reconciler(store, "apply", "-f", str(ctx.repos_yaml))]
    return [proc.reconciler(store, "sync", desired.repo_id(n), "--feed", ctx.upstream.url, "--upstream-name", n)
            for n in names]


def regsync_cold(ctx: Context, out: dict[str, Any]) -> None:
    """regsync into a fresh registry (left for the refresh and latency sections), or the note
    saying why there is no regsync row."""
    if regsync.binary() is None:
        out["regsync_note"] = regsync.missing_note()
        return
    dst = Registry(ctx.work / "regsync-dst")
    dst.start()
    ctx.cleanups.append(dst.stop)
    cfg = regsync.write_config(ctx.work / "regsync.yml", ctx.upstream.host, dst.host, list(ctx.fixtures.repos))
    out["regsync"] = _measure(ctx, lambda: regsync.once(cfg))
    ctx.shared["regsync_dst"] = dst


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_tool("curl", "curl")
    require_tool("skopeo", "skopeo")
    fs = ctx.fixtures
    out.update({"tags": sum(len(t) for t in fs.repos.values()),
                           "unique_blob_bytes": fs.summary()["blob_bytes"]})
    out["raw"] = _measure(ctx, lambda: raw_fetch(ctx))
    out["raw_durable"] = _measure(ctx, lambda: raw_durable(ctx))
    shutil.rmtree(ctx.work / "raw-durable", ignore_errors=True)
    y = skopeo_yaml(ctx)
    dir_dest = ctx.work / "skopeo-dir"
    dir_dest.mkdir()
    out["skopeo_dir"] = _measure(ctx, lambda: skopeo_sync(y, "--dest", "dir", str(dir_dest)))
    shutil.rmtree(dir_dest, ignore_errors=True)
    dst = Registry(ctx.work / "skopeo-dst")
    dst.start()
    ctx.cleanups.append(dst.stop)
    out["skopeo_docker"] = _measure(ctx, lambda: skopeo_sync(
        y, "--dest", "docker", "--dest-tls-verify=false", f"{dst.host}/mirror"))
    ctx.shared["skopeo_yaml"] = y
    ctx.shared["skopeo_dst"] = dst
    regsync_cold(ctx, out)

    if ctx.params.ours == "apply":
        require_commands(("apply",))
    else:
        require_commands(("sync",))
    out["ours_mode"] = ctx.params.ours
    out["ours"] = _measure(ctx, lambda: ours_cold(ctx, ctx.store))
    ctx.shared["store_synced"] = True
    ours, raw, sk = out["ours"], out["raw"], out["skopeo_dir"]
    if ours["get_bytes"] < out["unique_blob_bytes"]:
        raise SectionError(f"our sync pulled {ours['get_bytes']} bytes, less than the "
                           f"{out['unique_blob_bytes']} unique blob bytes: it did not sync everything")
    out["ratios"] = {
        "skopeo_dir_wall_over_ours": round(sk["wall_s"] / ours["wall_s"], 2),
        "skopeo_docker_wall_over_ours": round(out["skopeo_docker"]["wall_s"] / ours["wall_s"], 2),
        **({"regsync_wall_over_ours": round(out["regsync"]["wall_s"] / ours["wall_s"], 2)} if "regsync" in out else {}),
        # throughput relative to the physical limit, on unique bytes (what each must move)
        "ours_of_raw_throughput": round(raw["wall_s"] / ours["wall_s"], 3),
        "ours_of_raw_durable_throughput": round(out["raw_durable"]["wall_s"] / ours["wall_s"], 3),
    }
