"""Section 2, no-change refresh: nothing changed upstream since the complete cold sync.

* ``ours_plan``: ``reconciler plan -f repos.yaml`` (refreshes every upstream repository);
* ``ours_apply``: ``reconciler apply -f repos.yaml`` (must report no changes);
* ``skopeo``: ``skopeo sync --all --dest docker`` re-run into the registry the cold-sync
  section filled (skopeo cannot re-run ``--dest dir`` into the same directory).

Reported per unchanged tag: upstream requests (all of them, including per-repository tag
lists and the ``/v2/`` ping) and upstream manifest requests (HEAD/GET by tag or digest).
"""

from __future__ import annotations

from typing import Any

from bench import proc
from bench.harness import Context, SectionError, require_commands
from bench.sections.cold_sync import _measure, skopeo_sync


def per_tag(m: dict[str, Any], tags: int) -> dict[str, Any]:
    return {**m, "requests_per_tag": round(m["requests"] / tags, 3),
            "manifest_requests_per_tag": round(m["manifest_requests"] / tags, 3)}


def run(ctx: Context, out: dict[str, Any]) -> None:
    tags = sum(len(t) for t in ctx.fixtures.repos.values())
    out.update({"unchanged_tags": tags})
    y = ctx.need("skopeo_yaml", "the skopeo re-run needs the cold-sync section's destination")
    dst = ctx.need("skopeo_dst", "the skopeo re-run needs the cold-sync section's destination")
    out["skopeo"] = per_tag(_measure(ctx, lambda: skopeo_sync(
        y, "--dest", "docker", "--dest-tls-verify=false", f"{dst.host}/mirror")), tags)

    require_commands(("plan",), ("apply",))
    ctx.need("store_synced", "a no-change refresh needs the store of a complete cold sync")
    if not ctx.repos_yaml.exists():
        raise SectionError("no repos.yaml from the cold-sync section (it ran with --ours sync); "
                           "run with --ours apply")
    out["ours_plan"] = per_tag(_measure(ctx, lambda: proc.reconciler(
        ctx.store, "plan", "-f", str(ctx.repos_yaml), "--json")), tags)
    out["ours_apply"] = per_tag(_measure(ctx, lambda: proc.reconciler(
        ctx.store, "apply", "-f", str(ctx.repos_yaml))), tags)
    if out["ours_apply"]["blob_requests"]:
        raise SectionError(f"a no-change apply fetched {out['ours_apply']['blob_requests']} blobs upstream")
    out["ratios"] = {
        "skopeo_wall_over_ours_plan": round(out["skopeo"]["wall_s"] / out["ours_plan"]["wall_s"], 2),
        "skopeo_wall_over_ours_apply": round(out["skopeo"]["wall_s"] / out["ours_apply"]["wall_s"], 2),
    }
