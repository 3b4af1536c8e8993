"""Section push (issue 23): the fixture set pushed into an empty distribution registry,
side by side with the registry-to-registry peers, then re-run with nothing to change.

* ``ours_cold``: ``reconciler apply -f repos-push.yaml`` on the cold-synced store: every
  repository with a ``push:`` target ``mirror/REPO`` on a fresh registry (the apply also
  refreshes its upstreams: one HEAD per tag, as any apply does);
* ``regsync_cold``: ``regsync once`` from the upstream registry into a fresh registry
  (left out, with ``regsync_note``, where the binary is missing);
* ``skopeo_cold``: ``skopeo sync --all --dest docker`` from the upstream into a fresh registry;
* no change, interleaved ``refresh_runs`` times: ``ours_plan`` (``plan -f``), ``ours_apply``
  (``apply -f``, must push nothing), ``regsync`` and ``skopeo`` re-runs into their targets.

Requests are counted on both sides from the registries' access logs: ``target_*`` at the
registry pushed to, ``source_*`` at the upstream (ours reads its blobs from the store).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from bench import desired, proc, regsync
from bench.harness import Context, SectionError, require_commands, require_tool
from bench.registry import Registry
from bench.sections.cold_sync import skopeo_sync, skopeo_yaml


def write_push_yaml(ctx: Context, target_url: str) -> None:
    """The cold sync's repos.yaml plus a push target per repository."""
    path = ctx.work / "repos-push.yaml"
    desired.write_mirror(path, ctx.upstream.url, list(ctx.fixtures.repos))
    text = path.read_text().replace("repositories:\n", f"  target:\n    url: {target_url}\nrepositories:\n", 1)
    for name in ctx.fixtures.repos:
        text = text.replace(f"    publish: {name}\n",
                            f"    publish: {name}\n    push:\n      - {{registry: target, name: mirror/{name}}}\n", 1)
    path.write_text(text)
    ctx.shared["push_yaml"] = path


def _measure(ctx: Context, target: Registry, fn: Callable[[], proc.Run]) -> dict[str, Any]:
    subprocess.run(["sync"], check=False)
    src, dst = ctx.upstream.mark(), target.mark()
    run = fn().check()
    source, pushed = ctx.upstream.traffic_since(src), target.traffic_since(dst, settle=0)
    return {"wall_s": round(run.wall_s, 3), "cpu_s": round(run.cpu_s, 2),
            "peak_rss_mb": round(run.peak_rss_kib / 1024, 1), "requests": pushed.requests,
            "manifest_requests": pushed.manifest_requests, "blob_requests": pushed.blob_requests,
            "target_by_method": pushed.by_method or {}, "source_requests": source.requests,
            "source_get_bytes": source.get_bytes}


def _fresh(ctx: Context, name: str) -> Registry:
    reg = Registry(ctx.work / name)
    reg.start()
    ctx.cleanups.append(reg.stop)
    return reg


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_tool("skopeo", "skopeo")
    require_commands(("apply",), ("push",))
    ctx.need("store_synced", "pushing needs the store of a complete cold sync")
    tags = sum(len(t) for t in ctx.fixtures.repos.values())
    out.update({"tags": tags, "repositories": len(ctx.fixtures.repos)})
    ours_dst, skopeo_dst = _fresh(ctx, "push-ours"), _fresh(ctx, "push-skopeo")
    write_push_yaml(ctx, ours_dst.url)
    push_yaml = ctx.shared["push_yaml"]
    y = skopeo_yaml(ctx)
    cold: dict[str, tuple[Registry, Callable[[], proc.Run]]] = {
        "ours_cold": (ours_dst, lambda: proc.reconciler(ctx.store, "apply", "-f", str(push_yaml))),
        "skopeo_cold": (skopeo_dst, lambda: skopeo_sync(y, "--dest", "docker", "--dest-tls-verify=false",
                                                        f"{skopeo_dst.host}/mirror")),
    }
    if regsync.binary() is None:
        out["regsync_note"] = regsync.missing_note()
    else:
        regsync_dst = _fresh(ctx, "push-regsync")
        cfg = regsync.write_config(ctx.work / "regsync-push.yml", ctx.upstream.host, regsync_dst.host,
                                   list(ctx.fixtures.repos))
        cold["regsync_cold"] = (regsync_dst, lambda: regsync.once(cfg))
    for name, (target, fn) in cold.items():
        out[name] = _measure(ctx, target, fn)
    if out["ours_cold"]["blob_requests"] == 0:
        raise SectionError("the cold push sent no blob request to the target: nothing was pushed")

    again: dict[str, tuple[Registry, Callable[[], proc.Run]]] = {
        "ours_plan": (ours_dst, lambda: proc.reconciler(ctx.store, "plan", "-f", str(push_yaml), "--json")),
        "ours_apply": (ours_dst, lambda: proc.reconciler(ctx.store, "apply", "-f", str(push_yaml))),
        "skopeo": cold["skopeo_cold"],
    }
    if "regsync_cold" in cold:
        again["regsync"] = cold["regsync_cold"]
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in again}
    for i in range(ctx.params.refresh_runs):  # interleaved: all see the same minute of machine load
        for name in (list(again) if i % 2 == 0 else list(again)[::-1]):
            target, fn = again[name]
            seen[name].append(_measure(ctx, target, fn))
    for name, ms in seen.items():
        ordered = sorted(ms, key=lambda m: float(m["wall_s"]))
        out[name] = {**ordered[len(ordered) // 2], "runs": len(ms), "walls_s": [m["wall_s"] for m in ms],
                     "requests_per_tag": round(ordered[len(ordered) // 2]["requests"] / tags, 3)}
    methods = set(out["ours_apply"]["target_by_method"])
    if methods - {"HEAD", "GET"} or out["ours_apply"]["blob_requests"]:
        raise SectionError(f"a no-change push sent {out['ours_apply']['target_by_method']} to the target")
    out["ratios"] = {
        "skopeo_cold_wall_over_ours": round(out["skopeo_cold"]["wall_s"] / out["ours_cold"]["wall_s"], 2),
        "skopeo_rerun_wall_over_ours_apply": round(out["skopeo"]["wall_s"] / out["ours_apply"]["wall_s"], 2),
    }
    if "regsync" in out:
        out["ratios"]["regsync_cold_wall_over_ours"] = round(out["regsync_cold"]["wall_s"]
                                                             / out["ours_cold"]["wall_s"], 2)
        out["ratios"]["regsync_rerun_wall_over_ours_apply"] = round(out["regsync"]["wall_s"]
                                                                    / out["ours_apply"]["wall_s"], 2)
