"""Section 2, no-change refresh: nothing changed upstream since the complete cold sync.

* ``ours_plan``: ``reconciler plan -f repos.yaml`` (refreshes every upstream repository);
* ``ours_apply``: ``reconciler apply -f repos.yaml`` (must report no changes);
* ``skopeo``: ``skopeo sync --all --dest docker`` re-run into the registry the cold-sync
  section filled (skopeo cannot re-run ``--dest dir`` into the same directory);
* ``regsync``: ``regsync once`` re-run into the registry the cold-sync section's regsync
  filled (left out, with ``regsync_note``, where the binary is missing).

Reported per unchanged tag: upstream requests (all of them, including per-repository tag
lists and the ``/v2/`` ping) and upstream manifest requests (HEAD/GET by tag or digest).
"""

from __future__ import annotations

from typing import Any

from bench import proc, regsync
from bench.harness import Context, SectionError, require_commands
from bench.sections.cold_sync import measure_interleaved, skopeo_sync


def per_tag(m: dict[str, Any], tags: int) -> dict[str, Any]:
    return {**m, "requests_per_tag": round(m["requests"] / tags, 3),
            "manifest_requests_per_tag": round(m["manifest_requests"] / tags, 3)}


def run(ctx: Context, out: dict[str, Any]) -> None:
    tags = sum(len(t) for t in ctx.fixtures.repos.values())
    out.update({"unchanged_tags": tags})
    y = ctx.need("skopeo_yaml", "the skopeo re-run needs the cold-sync section's destination")
    dst = ctx.need("skopeo_dst", "the skopeo re-run needs the cold-sync section's destination")
    require_commands(("plan",), ("apply",))
    ctx.need("store_synced", "a no-change refresh needs the store of a complete cold sync")
    if not ctx.repos_yaml.exists():
        raise SectionError("no repos.yaml from the cold-sync section (it ran with --ours sync); "
                           "run with --ours apply")
    fns = {"skopeo": lambda: skopeo_sync(y, "--dest", "docker", "--dest-tls-verify=false", f"{dst.host}/mirror"),
           "ours_plan": lambda: proc.reconciler(ctx.store, "plan", "-f", str(ctx.repos_yaml), "--json"),
           "ours_apply": lambda: proc.reconciler(ctx.store, "apply", "-f", str(ctx.repos_yaml))}
    regsync.add_rerun(ctx, fns, out, ctx.upstream.host, "regsync.yml")
    # several runs, interleaved: one run of a sub-second command swings by 30-50% here
    for name, m in measure_interleaved(ctx, fns, ctx.params.refresh_runs).items():
        out[name] = per_tag(m, tags)
    if out["ours_apply"]["blob_requests"]:
        raise SectionError(f"a no-change apply fetched {out['ours_apply']['blob_requests']} blobs upstream")
    out["ratios"] = {
        "skopeo_wall_over_ours_plan": round(out["skopeo"]["wall_s"] / out["ours_plan"]["wall_s"], 2),
        "skopeo_wall_over_ours_apply": round(out["skopeo"]["wall_s"] / out["ours_apply"]["wall_s"], 2),
    }
    if "regsync" in out:
        out["ratios"]["regsync_wall_over_ours_plan"] = round(out["regsync"]["wall_s"] / out["ours_plan"]["wall_s"], 2)
