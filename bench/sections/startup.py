"""Section: start-up. What a user waits for before any work: ``reconciler --version`` and
``reconciler validate -f examples/demo.yaml`` (parse, schema check, semantic rules; no
store, no network), each ``startup_runs`` times, interleaved, median wall
time; ``python -c pass`` alongside as the interpreter's own floor on this machine."""

from __future__ import annotations

import sys
from typing import Any

from bench import proc
from bench.harness import Context, require_commands


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_commands(("validate",))
    demo = proc.REPO_ROOT / "examples" / "demo.yaml"
    env = proc.reconciler_env()
    cmds = {"python_pass": [sys.executable, "-c", "pass"],
            "version": [sys.executable, "-m", "reconciler", "--version"],
            "validate_demo": [sys.executable, "-m", "reconciler", "validate", "-f", str(demo)]}
    runs = ctx.params.startup_runs
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    cpus: dict[str, list[float]] = {k: [] for k in cmds}
    rss: dict[str, int] = {k: 0 for k in cmds}
    for i in range(runs):
        for name in (list(cmds) if i % 2 == 0 else list(cmds)[::-1]):
            r = proc.run(cmds[name], env=env, cwd=proc.REPO_ROOT).check()
            walls[name].append(r.wall_s)
            cpus[name].append(r.cpu_s)
            rss[name] = max(rss[name], r.peak_rss_kib)
    for name in cmds:
        w = sorted(walls[name])
        out[name] = {"wall_s": round(w[len(w) // 2], 4), "min_wall_s": round(w[0], 4),
                     "cpu_s": round(sorted(cpus[name])[len(w) // 2], 3), "peak_rss_mb": round(rss[name] / 1024, 1),
                     "runs": runs, "walls_s": [round(x, 4) for x in walls[name]]}
