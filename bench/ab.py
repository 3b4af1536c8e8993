"""``python -m bench.ab``: one scenario, many runs, several checkouts side by side.

The full harness measures each command once, among peers that take most of its minutes.
Tuning needs the opposite: the same scenario many times, two checkouts interleaved run by
run (other work on the machine changes the wall time from one minute to the next), and the
median of each. One upstream registry is started and filled once; every run gets a fresh
store.

Examples::

    python -m bench.ab --runs 7                                   # this checkout, cold sync
    python -m bench.ab --checkout base=/tmp/base --checkout new=.  # A/B, interleaved
    python -m bench.ab --scenario refresh --runs 9
    python -m bench.ab --scenario raw --runs 5                    # curl, the physical limit
    python -m bench.ab --scenario refresh --rtt-ms 50             # through bench/latency.py
    python -m bench.ab --scenario plan-scale --plan-scale 1000x50 --valgrind   # instructions too

Scenarios: ``cold`` (``reconciler apply -f repos.yaml`` into an empty store), ``refresh``
(``reconciler plan`` of a store one cold apply per checkout filled: the no-change
refresh), ``raw`` (curl fetching every unique blob once, ``--parallel-max 6``, as the full
harness), ``plan-scale`` (``plan --no-refresh`` of a populated store, as the plan_scale
section; no registry), ``version`` and ``validate`` (start-up), ``serve`` (the serving
section's three loads against ``reconciler serve`` of each checkout over one store, and
against the distribution registry, in turn, each run; medians and ratios to the registry). ``--rtt-ms``: the
upstream is reached through ``bench/latency.py``. ``--valgrind``: each run also counts
instructions (``valgrind --tool=cachegrind --cache-sim=no``: independent of the machine's
load; slow).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import desired, fixtures, proc
from bench.harness import Context, Params
from bench.latency import LatencyProxy
from bench.populate import populate
from bench.registry import Registry, free_port
from bench.sections import serving
from bench.sections.cold_sync import raw_fetch


def _env(checkout: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(checkout), "NO_COLOR": "1"}


def _reconciler(checkout: Path, store: Path, *args: str, valgrind: Path | None = None) -> proc.Run:
    # cwd too: ``-m`` puts the working directory first on sys.path, ahead of PYTHONPATH
    prefix = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={valgrind}"] \
        if valgrind else []
    return proc.run([*prefix, sys.executable, "-m", "reconciler", "--store", str(store), *args], env=_env(checkout),
                    cwd=checkout).check()


def instructions(run: proc.Run) -> int:
    """Instructions counted by cachegrind (its ``I refs`` summary line on stderr)."""
    for line in run.stderr.splitlines():
        if "I" in line and "refs:" in line:
            return int(line.rpartition("refs:")[2].strip().replace(",", ""))
    raise RuntimeError(f"no instruction count in valgrind's output:\n{run.stderr[-800:]}")


class Scenario:
    """What one run measures, for one checkout: ``prepare`` once per checkout, then ``one``."""

    def __init__(self, name: str, ctx: Context, yaml: Path, valgrind: bool) -> None:
        self.name, self.ctx, self.yaml, self.valgrind = name, ctx, yaml, valgrind

    def prepare(self, label: str, checkout: Path) -> None:
        if self.name == "refresh":
            _reconciler(checkout, self.ctx.work / f"store-{label}", "apply", "-f", str(self.yaml))

    def one(self, label: str, checkout: Path, n: int) -> proc.Run:
        ctx = self.ctx
        vg = ctx.work / f"cg-{label}-{n}.out" if self.valgrind else None
        subprocess.run(["sync"], check=False)  # the previous run's dirty pages are not this run's cost
        if self.name == "raw":
            return raw_fetch(ctx).check()
        if self.name == "refresh":
            return _reconciler(checkout, ctx.work / f"store-{label}", "plan", "-f", str(self.yaml), valgrind=vg)
        if self.name == "plan-scale":
            return _reconciler(checkout, ctx.work / "scale-store", "plan", "-f", str(self.yaml), "--no-refresh",
                               valgrind=vg)
        if self.name == "version":
            return _reconciler(checkout, ctx.work / "none", "--version", valgrind=vg)
        if self.name == "validate":
            return _reconciler(checkout, ctx.work / "none", "validate", "-f",
                               str(proc.REPO_ROOT / "examples" / "demo.yaml"), valgrind=vg)
        store = ctx.work / f"store-{label}-{n}"
        try:
            return _reconciler(checkout, store, "apply", "-f", str(self.yaml), valgrind=vg)
        finally:
            shutil.rmtree(store, ignore_errors=True)


def _serve(checkouts: list[tuple[str, Path]], ctx: Context, runs: int) -> None:
    """The serving loads, each checkout's server and the registry in turn, ``runs`` times."""
    first = checkouts[0][1]
    _reconciler(first, ctx.store, "apply", "-f", str(ctx.repos_yaml))
    serving.ensure_published(ctx.store, list(ctx.fixtures.repos))
    tag_paths, blob_paths = serving.load_paths(ctx)
    loads = {"manifest_get": "requests_per_s", "manifest_head": "requests_per_s", "blob_get": "mb_per_s"}
    got: dict[str, dict[str, list[float]]] = {n: {k: [] for k in loads} for n in ["registry", *dict(checkouts)]}
    for i in range(runs):
        for name, path in [("registry", None), *(checkouts if i % 2 == 0 else checkouts[::-1])]:
            if path is None:
                result = serving.hammer(ctx, ctx.upstream.url, tag_paths, blob_paths)
            else:
                url, server = serving.start_server(ctx, ctx.store, f"serve-{name}", env=_env(path), cwd=path)
                try:
                    result = serving.hammer(ctx, url, tag_paths, blob_paths)
                finally:
                    proc.stop_server(server)
            for load, unit in loads.items():
                got[name][load].append(float(result[load][unit]))
            print(f"run {i} {name}: " + ", ".join(f"{load} {got[name][load][-1]:.1f}" for load in loads)
                  + f" load {os.getloadavg()[0]:.2f}", flush=True)
    for name in got:
        medians = {load: statistics.median(values) for load, values in got[name].items()}
        ratios = {load: medians[load] / statistics.median(got["registry"][load]) for load in loads}
        print(f"serve {name}: " + ", ".join(f"{load} {medians[load]:.1f} ({ratios[load]:.2f}x the registry)"
                                            for load in loads) + f", median of {runs} runs")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=["cold", "refresh", "raw", "plan-scale", "version", "validate", "serve"],
                    default="cold")
    ap.add_argument("--checkout", action="append", default=[], metavar="NAME=PATH",
                    help="a checkout to measure (repeatable; default: this one)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--repos", type=int, default=Params.repos)
    ap.add_argument("--tags", type=int, default=Params.tags)
    ap.add_argument("--rtt-ms", type=float, help="reach the upstream through bench/latency.py with this round trip")
    ap.add_argument("--max-concurrency", type=int, help="the registry's max_concurrency in repos.yaml")
    ap.add_argument("--plan-scale", default="1000x50", metavar="REPOSxTAGS", help="for --scenario plan-scale")
    ap.add_argument("--valgrind", action="store_true", help="count instructions too (slow)")
    ap.add_argument("--hold", type=float, metavar="SECONDS",
                    help="only start and fill the upstream, write repos.yaml, print where, and keep them "
                         "this long (to run a profiler by hand)")
    a = ap.parse_args(argv)
    checkouts = [(c.partition("=")[0], Path(c.partition("=")[2]).resolve()) for c in a.checkout] \
        or [("this", proc.REPO_ROOT)]
    for _, path in checkouts:
        compileall.compile_dir(str(path / "reconciler"), quiet=1)
    params = Params(repos=a.repos, tags=a.tags)
    work = Path(tempfile.mkdtemp(prefix="reconciler-ab-"))
    upstream = Registry(work / "upstream")
    proxy: LatencyProxy | None = None
    try:
        fs = fixtures.FixtureSet({})
        if a.scenario not in ("plan-scale", "version", "validate"):
            upstream.start()
            fs = fixtures.build(params.repos, params.tags, params.layers, params.layer_size,
                                indexes=params.indexes, seed=params.seed)
            pusher = fixtures.Pusher(upstream.url)
            try:
                pusher.push(fs)
            finally:
                pusher.close()
        ctx = Context(params, work, upstream, fs, work / "store", work / "repos.yaml")
        url = upstream.url
        if a.rtt_ms:
            proxy = LatencyProxy(upstream.host, a.rtt_ms, work / "proxy.log").start()
            url = proxy.url
        if a.scenario == "plan-scale":
            repos, _, tags = a.plan_scale.partition("x")
            url = f"http://127.0.0.1:{free_port()}"
            populate(work / "scale-store", url, int(repos), int(tags))
            desired.write_scale(ctx.repos_yaml, url, int(repos), int(tags))
        else:
            desired.write_mirror(ctx.repos_yaml, url, list(fs.repos), max_concurrency=a.max_concurrency)
        if a.hold:
            print(f"upstream {url}; desired state {ctx.repos_yaml}; held {a.hold:.0f} s", flush=True)
            time.sleep(a.hold)
            return 0
        if a.scenario == "serve":
            _serve(checkouts, ctx, a.runs)
            return 0
        scenario = Scenario(a.scenario, ctx, ctx.repos_yaml, a.valgrind)
        for name, path in checkouts:
            scenario.prepare(name, path)
        walls: dict[str, list[float]] = {name: [] for name, _ in checkouts}
        cpus: dict[str, list[float]] = {name: [] for name, _ in checkouts}
        irefs: dict[str, list[int]] = {name: [] for name, _ in checkouts}
        for i in range(a.runs):
            # alternate the order too: the first of a pair must not always pay a cold cache
            for name, path in (checkouts if i % 2 == 0 else checkouts[::-1]):
                mark = upstream.mark()
                r = scenario.one(name, path, i)
                requests = upstream.traffic_since(mark, settle=0.1).requests if upstream.proc else 0
                walls[name].append(r.wall_s)
                cpus[name].append(r.cpu_s)
                extra = ""
                if a.valgrind:
                    irefs[name].append(instructions(r))
                    extra = f" instructions {irefs[name][-1] / 1e9:.3f} G"
                print(f"run {i} {name}: wall {r.wall_s:.3f} s cpu {r.cpu_s:.2f} s upstream requests {requests}"
                      f"{extra} load {os.getloadavg()[0]:.2f}", flush=True)
        for name, _ in checkouts:
            extra = f", median instructions {statistics.median(irefs[name]) / 1e9:.3f} G" if irefs[name] else ""
            print(f"{a.scenario} {name}: median wall {statistics.median(walls[name]):.3f} s "
                  f"(min {min(walls[name]):.3f}, max {max(walls[name]):.3f}), median cpu "
                  f"{statistics.median(cpus[name]):.2f} s{extra}, {a.runs} runs")
    finally:
        if proxy is not None:
            proxy.stop()
        upstream.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
