"""Section: ``reconciler store du --json`` on a large store (default 1,000 repositories x
100 manifests each = 100,000 manifests, 4 versions each), filled through the store API
(``populate.populate_history``). Wall time and peak RSS of the command, and a check that
its answer adds up (every repository listed, old versions holding bytes)."""

from __future__ import annotations

import json
from typing import Any

from bench import proc
from bench.harness import Context, SectionError, require_commands
from bench.populate import populate_history


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_commands(("store", "du"))
    repos, manifests, versions = ctx.params.du_scale
    key = f"{repos}x{manifests}"
    store = ctx.work / f"du-store-{key}"
    pop = populate_history(store, repos, manifests, versions)
    r = proc.reconciler(store, "store", "du", "--json").check()
    usage = json.loads(r.stdout)
    listed = len(usage["repositories"])
    out[key] = {"repos": repos, "manifests": repos * manifests, "versions": versions, **pop, **r.to_json(),
                "total_bytes": usage["total_bytes"],
                "old_versions_bytes": sum(x["old_versions_bytes"] for x in usage["repositories"])}
    if listed != repos or (versions > 1 and not out[key]["old_versions_bytes"]):
        raise SectionError(f"store du listed {listed} of {repos} repositories, old versions holding "
                           f"{out[key]['old_versions_bytes']} bytes: the populated store is not what was asked for")
