"""Section 4, serving: the same content served by the distribution registry (the upstream,
filled by the fixture push) and by ``reconciler serve`` (our store after the cold sync,
each repository published under its upstream name), hit by the same load generators with
the same concurrency and duration, one server at a time, loopback only; rounds alternate
between the two servers and the median round of each load is reported:

* manifest GET by tag, cycling over every tag, all four manifest types accepted (wrk);
* manifest HEAD by tag (ab: wrk cannot do HEAD);
* blob GET, cycling over every unique blob (wrk); throughput in MB/s.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import desired, proc, wrk
from bench.harness import Context, SectionError, require_commands, require_tool
from bench.registry import free_port, proc_peak_rss_kib


def start_server(ctx: Context, store: Path, name: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> tuple[str, Any]:
    """``reconciler serve`` of ``store``: this checkout, or the one ``env``/``cwd`` name."""
    port = free_port()
    return started_server(ctx, proc.reconciler_cmd(store, "serve", "--port", str(port)), port, name,
                          env or proc.reconciler_env(), cwd=cwd)


def started_server(ctx: Context, cmd: list[str], port: int, name: str, env: dict[str, str], *,
                   ready: str = "/v2/", wait: float = 30, cwd: Path | None = None) -> tuple[str, Any]:
    """Start ``cmd`` (a ``reconciler serve`` on ``port``, in ``cwd``), stopped by the context's
    cleanups; (its URL, the process) once ``ready`` answers 200."""
    server = proc.popen_server(cmd, ctx.work / f"{name}.log", env=env, cwd=cwd)
    ctx.cleanups.append(lambda: proc.stop_server(server))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SectionError(f"reconciler serve ({name}) exited {server.returncode} at start: "
                               f"{(ctx.work / f'{name}.log').read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(url + ready, timeout=5) as r:
                if r.status == 200:
                    return url, server
        except OSError:
            time.sleep(0.1)
    raise SectionError(f"reconciler serve ({name}) did not answer on {url}{ready} within {wait:g} s")


def ensure_published(store: Path, names: list[str]) -> int:
    """Publish each synced repository under its upstream name unless the apply already did."""
    from reconciler.store.sqlite import SQLiteStore

    s = SQLiteStore(store)
    try:
        published = {r.id: r.publish_name for r in s.repository_list() if r.published_version is not None}
    finally:
        s.close()
    todo = [n for n in names if published.get(desired.repo_id(n)) != n]
    if todo:
        require_commands(("publish",))
    for n in todo:
        proc.reconciler(store, "publish", desired.repo_id(n), "--name", n).check()
    return len(todo)


def tree_peak_rss_kib(pid: int) -> int:
    """VmHWM of a server and its worker processes (a pre-fork server has several)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += proc_peak_rss_kib(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


def hammer(ctx: Context, url: str, tag_paths: list[str], blob_paths: list[str]) -> dict[str, Any]:
    p = ctx.params
    kw = {"threads": p.wrk_threads, "connections": p.wrk_connections, "seconds": p.wrk_seconds}
    out = {
        "manifest_get": wrk.load(url, tag_paths, "GET", ctx.work / "manifests.lua", **kw),
        "manifest_head": wrk.head_load(url, tag_paths[0], connections=p.wrk_connections, seconds=p.wrk_seconds),
        "blob_get": wrk.load(url, blob_paths, "GET", ctx.work / "blobs.lua", **kw),
    }
    for what, res in out.items():
        if res["errors"] > res["requests"] * 0.01 or not res["requests"]:
            raise SectionError(f"{what} against {url}: {res['errors']} errors in {res['requests']} requests")
    return out


def median_rounds(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per load, the round with the median requests/s, plus every round's requests/s."""
    out: dict[str, Any] = {}
    for load in rounds[0]:
        runs = sorted((r[load] for r in rounds), key=lambda res: float(res["requests_per_s"]))
        out[load] = dict(runs[len(runs) // 2], rounds_requests_per_s=[r[load]["requests_per_s"] for r in rounds])
    return out


def load_paths(ctx: Context) -> tuple[list[str], list[str]]:
    """The paths the loads cycle through: every tag's manifest, every unique blob once."""
    fs = ctx.fixtures
    tag_paths = [f"/v2/{r}/manifests/{t}" for r, tags in fs.repos.items() for t in tags]
    seen: dict[str, str] = {}
    for r, tags in fs.repos.items():
        for d in tags.values():
            for b in fs.blobs_of(d):
                seen.setdefault(b, f"/v2/{r}/blobs/{b}")
    return tag_paths, list(seen.values())


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_tool("wrk", "wrk")
    require_tool("ab", "apache2-utils")
    tag_paths, blob_paths = load_paths(ctx)
    out.update({"tag_paths": len(tag_paths), "blob_paths": len(blob_paths),
                "load": {"threads": ctx.params.wrk_threads, "connections": ctx.params.wrk_connections,
                         "seconds": ctx.params.wrk_seconds}})
    require_commands(("serve",))
    ctx.need("store_synced", "serving needs the store of the cold sync")
    out["published_by_bench"] = ensure_published(ctx.store, list(ctx.fixtures.repos))
    url, server = start_server(ctx, ctx.store, "serve")
    # Rounds alternate registry and ours so both see the same machine load, and each figure
    # is the median round: one 5-second run swings by 2x on a shared machine (the HEAD load
    # went 1,000 to 4,000 req/s between runs of the same code).
    rounds: dict[str, list[dict[str, Any]]] = {"registry": [], "ours": []}
    try:
        for _ in range(ctx.params.serving_rounds):
            rounds["registry"].append(hammer(ctx, ctx.upstream.url, tag_paths, blob_paths))
            rounds["ours"].append(hammer(ctx, url, tag_paths, blob_paths))
        out["ours"] = median_rounds(rounds["ours"])
        out["ours"]["peak_rss_mb"] = round(tree_peak_rss_kib(server.pid) / 1024, 1)
    finally:
        proc.stop_server(server)
    out["registry"] = median_rounds(rounds["registry"])
    out["registry"]["peak_rss_mb"] = round(ctx.upstream.peak_rss_kib() / 1024, 1)
    reg, ours = out["registry"], out["ours"]
    out["ratios"] = {
        "manifest_get_rps": round(ours["manifest_get"]["requests_per_s"] / reg["manifest_get"]["requests_per_s"], 3),
        "manifest_head_rps": round(ours["manifest_head"]["requests_per_s"]
                                   / reg["manifest_head"]["requests_per_s"], 3),
        "blob_mb_per_s": round(ours["blob_get"]["mb_per_s"] / reg["blob_get"]["mb_per_s"], 3),
    }
