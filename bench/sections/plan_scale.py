"""Section 3, plan scale: ``reconciler plan -f repos.yaml --no-refresh`` for large desired
states (default 1,000 repositories x 50 tags and 10,000 x 10) against a store that already
holds exactly that content, so the plan is the no-change plan and measures the cost of
loading, diffing and rendering. Wall time and the plan process's peak RSS (``wait4``).

The store is filled through the store API (bench/populate.py); no registry is contacted
(the feed URL points at a closed port, so an accidental refresh fails loudly).
"""

from __future__ import annotations

import json
from typing import Any

from bench import desired, proc
from bench.harness import Context, SectionError, require_commands
from bench.populate import populate
from bench.registry import free_port


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_commands(("plan",))
    # nothing listens there: --no-refresh must not contact upstream
    url = f"http://127.0.0.1:{free_port()}"
    for repos, tags in ctx.params.plan_scales:
        key = f"{repos}x{tags}"
        store = ctx.work / f"plan-store-{key}"
        yaml = ctx.work / f"plan-{key}.yaml"
        pop = populate(store, url, repos, tags)
        desired.write_scale(yaml, url, repos, tags)
        r = proc.reconciler(store, "plan", "-f", str(yaml), "--no-refresh", "--json").check()
        plan = json.loads(r.stdout)
        out[key] = {"repos": repos, "tags": tags, "yaml_bytes": yaml.stat().st_size, **pop, **r.to_json(),
                    "stdout_bytes": len(r.stdout), "actions": len(plan.get("actions", []))}
        if out[key]["actions"]:
            raise SectionError(f"plan {key} against its own populated store has {out[key]['actions']} actions, "
                               "expected none: the store does not hold the desired state (bench/populate.py)")
