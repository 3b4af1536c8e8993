"""The run: parameters, the shared context (upstream registry, fixture set, our store), and
the loop over sections that records each one's result or its failure.

A section is a function ``run(ctx, out)`` that fills the dict ``out`` as it measures. A section that cannot run (a reconciler
command that has not landed, a missing tool, a failing child process) is recorded with
``"status": "error"`` and the reason, and the whole run then exits non-zero: nothing is
silently skipped.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import fixtures, proc
from bench.registry import Registry

log = logging.getLogger("bench")

MiB = 1 << 20


@dataclass
class Params:
    repos: int = 20
    tags: int = 5
    layers: int = 3
    layer_size: int = MiB
    indexes: int = 2
    seed: int = 1
    #: (repositories, tags) desired states for the plan-scale section
    plan_scales: tuple[tuple[int, int], ...] = ((1000, 50), (10000, 10))
    wrk_threads: int = 2
    wrk_connections: int = 16
    wrk_seconds: int = 5
    #: serving: rounds of (registry, ours) load, interleaved; each figure is the median round
    serving_rounds: int = 3
    big_layer_size: int = 1024 * MiB
    big_clients: int = 8
    raw_parallel: int = 6
    #: "apply" (one apply of a generated repos.yaml) or "sync" (one sync command per repository)
    ours: str = "apply"
    #: store du: (repositories, manifests of each, versions of each)
    du_scale: tuple[int, int, int] = (1000, 100, 4)
    #: runs of each sub-second command in the refresh, latency and startup sections (median reported)
    refresh_runs: int = 3
    #: latency: the round trip the proxy adds to every request (bench/latency.py)
    latency_rtt_ms: float = 50.0
    #: cold_sync_big: (repositories, tags, layers, layer size) of the large-layer fixture shape
    big_shape: tuple[int, int, int, int] = (4, 2, 3, 16 * MiB)
    #: startup: runs of each command (median reported)
    startup_runs: int = 7
    #: large_store: (repositories, manifests of each)
    large_store: tuple[int, int] = (5000, 20)

    @classmethod
    def smoke(cls) -> Params:
        return cls(repos=2, tags=2, layer_size=64 * 1024, plan_scales=((20, 5),), wrk_seconds=1, serving_rounds=1,
                   wrk_connections=4, big_layer_size=4 * MiB, big_clients=2, raw_parallel=2, du_scale=(20, 10, 3),
                   refresh_runs=1, startup_runs=2, big_shape=(1, 1, 3, 256 * 1024), large_store=(20, 5))


@dataclass
class Context:
    params: Params
    work: Path
    upstream: Registry
    fixtures: fixtures.FixtureSet
    #: our store after the cold sync (the refresh and serving sections use it)
    store: Path
    repos_yaml: Path
    #: things one section leaves for a later one (e.g. skopeo's destination registry)
    shared: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def need(self, key: str, why: str) -> Any:
        if key not in self.shared:
            raise SectionError(f"{why}: an earlier section did not complete ({key} missing)")
        return self.shared[key]


class SectionError(RuntimeError):
    """A section could not measure what it should; the message says why and what next."""


def require_commands(*commands: tuple[str, ...]) -> None:
    missing = [" ".join(c) for c in commands if not proc.has_command(*c)]
    if missing:
        raise SectionError("reconciler command(s) not available on this checkout: "
                           + ", ".join(f"`reconciler {m}`" for m in missing)
                           + " (not landed on main yet? `git merge main`)")


def require_tool(path: str, package: str) -> None:
    if shutil.which(path) is None:
        raise SectionError(f"{path} is missing: apt-get install -y {package}")


Section = Callable[[Context, dict[str, Any]], None]


def run(params: Params, sections: list[tuple[str, Section]], *, keep: bool = False,
        work_root: Path | None = None) -> dict[str, Any]:
    """Set up the upstream registry and fixtures, run ``sections`` in order, tear down."""
    work = Path(tempfile.mkdtemp(prefix="reconciler-bench-", dir=work_root))
    results: dict[str, Any] = {"params": asdict(params), "sections": {}}
    upstream = Registry(work / "upstream")
    ctx: Context | None = None
    try:
        proc.compile_checkout()
        upstream.start()
        t0 = time.monotonic()
        fs = fixtures.build(params.repos, params.tags, params.layers, params.layer_size,
                            indexes=params.indexes, seed=params.seed)
        build_s = time.monotonic() - t0
        pusher = fixtures.Pusher(upstream.url)
        try:
            push = pusher.push(fs)
        finally:
            pusher.close()
        results["fixtures"] = {**fs.summary(), "build_s": round(build_s, 2), "push": push}
        log.info("fixtures: %s", results["fixtures"])
        ctx = Context(params, work, upstream, fs, work / "store", work / "repos.yaml")
        for name, section in sections:
            log.info("section %s ...", name)
            t0 = time.monotonic()
            out: dict[str, Any] = {}
            try:
                section(ctx, out)
                res = {"status": "ok", **out}
            except Exception as exc:  # noqa: BLE001 - recorded, reported, and the run fails
                log.error("section %s failed: %s", name, exc)
                log.debug("%s", traceback.format_exc())
                # what was measured before the failure (e.g. the peers) is kept
                res = {"status": "error", "error": str(exc), **out}
            res["section_s"] = round(time.monotonic() - t0, 2)
            results["sections"][name] = res
    finally:
        for cleanup in reversed(ctx.cleanups if ctx else []):
            try:
                cleanup()
            except Exception as exc:  # noqa: BLE001 - teardown must go on
                log.warning("cleanup failed: %s", exc)
        upstream.stop()
        if keep:
            log.info("work directory kept: %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results
