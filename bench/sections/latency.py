"""Section: the fixture set across a network. The upstream registry is reached through
``bench/latency.py``, a proxy that adds a round trip (default 50 ms) to every request
and one more to every new connection, and each client does against it what it does
on loopback in the other sections:

* ``ours_cold_direct`` / ``ours_cold_latency``: ``reconciler apply -f repos.yaml`` into an
  empty store, straight from the registry and through the proxy, one after the other;
* ``ours_plan``: the no-change ``reconciler plan`` of the store the proxied cold apply
  filled (``--detailed-exitcode``: a plan with changes fails the section);
  ``ours_plan_c6``: the same with the registry's ``max_concurrency: 6`` (the default until
  issue 24's second round, now 16): with 6 requests in flight, 122 requests need at least
  21 round trips, with 16 at least 8;
* ``skopeo``: ``skopeo sync --dest docker`` re-run, source through the proxy, into the
  registry the cold-sync section filled;
* ``regsync``: ``regsync once`` re-run the same way (where the binary is there).

The no-change rows run ``refresh_runs`` times, interleaved; the median run is reported.
"""

from __future__ import annotations

from typing import Any

from bench import desired, proc, regsync
from bench.harness import Context, SectionError, require_commands
from bench.latency import LatencyProxy
from bench.sections.cold_sync import _measure, measure_interleaved, skopeo_sync
from bench.sections.refresh import per_tag


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_commands(("plan",), ("apply",))
    names = list(ctx.fixtures.repos)
    tags = sum(len(t) for t in ctx.fixtures.repos.values())
    proxy = LatencyProxy(ctx.upstream.host, ctx.params.latency_rtt_ms, ctx.work / "latency-proxy.log").start()
    ctx.cleanups.append(proxy.stop)
    out.update({"rtt_ms": ctx.params.latency_rtt_ms, "unchanged_tags": tags})

    direct_yaml, far_yaml = ctx.work / "repos-direct.yaml", ctx.work / "repos-latency.yaml"
    desired.write_mirror(direct_yaml, ctx.upstream.url, names)
    desired.write_mirror(far_yaml, proxy.url, names)
    c6_yaml = ctx.work / "repos-latency-c6.yaml"
    desired.write_mirror(c6_yaml, proxy.url, names, max_concurrency=6)
    direct_store, far_store = ctx.work / "latency-store-direct", ctx.work / "latency-store"
    out["ours_cold_direct"] = _measure(ctx, lambda: proc.reconciler(direct_store, "apply", "-f", str(direct_yaml)))
    out["ours_cold_latency"] = _measure(ctx, lambda: proc.reconciler(far_store, "apply", "-f", str(far_yaml)))

    fns = {"ours_plan": lambda: proc.reconciler(far_store, "plan", "-f", str(far_yaml), "--detailed-exitcode"),
           "ours_plan_c6": lambda: proc.reconciler(far_store, "plan", "-f", str(c6_yaml), "--detailed-exitcode")}
    if "skopeo_yaml" in ctx.shared:
        y = ctx.work / "skopeo-latency.yml"
        y.write_text(ctx.shared["skopeo_yaml"].read_text().replace(ctx.upstream.host, proxy.host))
        dst = ctx.shared["skopeo_dst"]
        fns["skopeo"] = lambda: skopeo_sync(y, "--dest", "docker", "--dest-tls-verify=false", f"{dst.host}/mirror")
    else:
        raise SectionError("the skopeo re-run needs the cold-sync section's destination: run cold_sync first")
    regsync.add_rerun(ctx, fns, out, proxy.host, "regsync-latency.yml")
    for name, m in measure_interleaved(ctx, fns, ctx.params.refresh_runs).items():
        out[name] = per_tag(m, tags)
    if out["ours_plan"]["blob_requests"]:
        raise SectionError(f"a no-change plan fetched {out['ours_plan']['blob_requests']} blobs upstream")
    out["ratios"] = {
        "skopeo_wall_over_ours_plan": round(out["skopeo"]["wall_s"] / out["ours_plan"]["wall_s"], 2),
        "skopeo_wall_over_ours_plan_c6": round(out["skopeo"]["wall_s"] / out["ours_plan_c6"]["wall_s"], 2),
        "cold_latency_over_direct": round(out["ours_cold_latency"]["wall_s"] / out["ours_cold_direct"]["wall_s"], 2),
    }
    if "regsync" in out:
        out["ratios"]["regsync_wall_over_ours_plan"] = round(out["regsync"]["wall_s"] / out["ours_plan"]["wall_s"], 2)
