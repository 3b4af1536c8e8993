"""Targets (issues 8 and 24) evaluated against a result, and the generated BENCHMARKS.md."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GiB = 1 << 30


@dataclass(frozen=True)
class Target:
    section: str
    text: str
    path: tuple[str, ...]  # into the section's result
    op: str  # ">=", "<=", "<"
    bound: float
    unit: str = ""
    #: the target only applies when this holds for the run's parameters
    applies: Callable[[dict[str, Any]], bool] = lambda params: True
    aim: str = ""
    #: the issue that set the target
    issue: int = 8
    #: a peer that may be absent (e.g. "regsync"): without its row the target is "n/a"
    peer: str = ""


def _large(p: dict[str, Any]) -> bool:
    return list(p.get("large_store", ()))[:2] == [5000, 20]


def _scale(repos: int, tags: int) -> Callable[[dict[str, Any]], bool]:
    return lambda p: [repos, tags] in [list(s) for s in p["plan_scales"]]


def _default_fixtures(p: dict[str, Any]) -> bool:
    return bool(p["repos"] == 20 and p["tags"] == 5 and p["layers"] == 3 and p["layer_size"] == 1 << 20)


TARGETS = (
    Target("cold_sync", "Cold sync at least as fast as `skopeo sync --dest dir`", ("ratios", "skopeo_dir_wall_over_ours"),
           ">=", 1.0, "x", aim="aim 2x"),
    Target("cold_sync", "Cold sync at least 70% of the raw parallel HTTP transfer", ("ratios", "ours_of_raw_throughput"),
           ">=", 0.7, "x"),
    Target("refresh", "No-change refresh (`plan`) at least 20x faster than a skopeo sync re-run",
           ("ratios", "skopeo_wall_over_ours_plan"), ">=", 20, "x"),
    Target("refresh", "No-change refresh: at most one upstream manifest request per unchanged tag",
           ("ours_plan", "manifest_requests_per_tag"), "<=", 1, "req/tag"),
    Target("plan_scale", "Plan 1,000 x 50 (--no-refresh) under 2 s", ("1000x50", "wall_s"), "<", 2, "s",
           applies=lambda p: [1000, 50] in [list(s) for s in p["plan_scales"]]),
    Target("plan_scale", "Plan 1,000 x 50 (--no-refresh) under 300 MB", ("1000x50", "peak_rss_mb"), "<", 300, "MB",
           applies=lambda p: [1000, 50] in [list(s) for s in p["plan_scales"]]),
    Target("serving", "Serving: at least 50% of the registry's manifest GET requests/s",
           ("ratios", "manifest_get_rps"), ">=", 0.5, "x"),
    Target("serving", "Serving: at least 50% of the registry's manifest HEAD requests/s",
           ("ratios", "manifest_head_rps"), ">=", 0.5, "x"),
    Target("serving", "Serving: at least 80% of the registry's blob throughput", ("ratios", "blob_mb_per_s"),
           ">=", 0.8, "x"),
    Target("store_du", "`store du` of 1,000 repositories / 100,000 manifests under 2 s", ("1000x100", "wall_s"),
           "<", 2, "s", applies=lambda p: list(p.get("du_scale", ()))[:2] == [1000, 100]),
    Target("memory", "Sync peak RSS under 150 MB for a 1 GiB layer", ("sync", "peak_rss_mb"), "<", 150, "MB",
           applies=lambda p: p["big_layer_size"] >= GiB),
    # issue 24
    Target("latency", "No-change `plan` across a 50 ms round trip in at most 1.0 s", ("ours_plan", "wall_s"),
           "<=", 1.0, "s", issue=24, applies=lambda p: _default_fixtures(p) and p.get("latency_rtt_ms") == 50),
    Target("latency", "No-change `plan` across 50 ms at least 10x faster than a skopeo re-run through the same "
           "proxy", ("ratios", "skopeo_wall_over_ours_plan"), ">=", 10, "x", issue=24),
    Target("latency", "Cold apply across 50 ms within 2x of the cold apply without latency",
           ("ratios", "cold_latency_over_direct"), "<=", 2, "x", issue=24),
    Target("cold_sync", "Cold sync (3 x 1 MiB layers) at least 50% of the raw parallel transfer",
           ("ratios", "ours_of_raw_throughput"), ">=", 0.5, "x", issue=24, applies=_default_fixtures),
    Target("cold_sync", "Cold sync (3 x 1 MiB layers) at least 2x `skopeo sync --dest dir`",
           ("ratios", "skopeo_dir_wall_over_ours"), ">=", 2, "x", issue=24),
    Target("cold_sync_big", "Cold sync (3 x 16 MiB layers) at least 80% of the raw parallel transfer",
           ("ratios", "ours_of_raw_throughput"), ">=", 0.8, "x", issue=24,
           applies=lambda p: list(p.get("big_shape", ()))[3:] == [16 << 20]),
    Target("cold_sync_big", "Cold sync (3 x 16 MiB layers) at least 2x `skopeo sync --dest dir`",
           ("ratios", "skopeo_dir_wall_over_ours"), ">=", 2, "x", issue=24),
    Target("refresh", "No-change `plan` no slower than `regsync once` in the same run",
           ("ratios", "regsync_wall_over_ours_plan"), ">=", 1, "x", issue=24, peer="regsync"),
    Target("plan_scale", "Plan 1,000 x 50 (--no-refresh) under 1.0 s", ("1000x50", "wall_s"), "<", 1.0, "s",
           issue=24, applies=_scale(1000, 50)),
    Target("plan_scale", "Plan 10,000 x 10 (--no-refresh) under 3 s", ("10000x10", "wall_s"), "<", 3, "s",
           issue=24, applies=_scale(10000, 10)),
    Target("plan_scale", "Plan 10,000 x 10 (--no-refresh) under 200 MB", ("10000x10", "peak_rss_mb"), "<", 200,
           "MB", issue=24, applies=_scale(10000, 10)),
    Target("startup", "`reconciler --version` under 100 ms", ("version", "wall_s"), "<", 0.1, "s", issue=24),
    Target("startup", "`reconciler validate -f examples/demo.yaml` under 100 ms", ("validate_demo", "wall_s"), "<",
           0.1, "s", issue=24),
    # issue 23
    Target("push", "Cold push of the fixture set faster than `regsync once` into an empty registry",
           ("ratios", "regsync_cold_wall_over_ours"), ">=", 1, "x", issue=23, peer="regsync"),
    Target("push", "No-change push (`apply`) no slower than a `regsync once` re-run",
           ("ratios", "regsync_rerun_wall_over_ours_apply"), ">=", 1, "x", issue=23, peer="regsync"),
    Target("push", "No-change push (`apply`) at least 5x faster than a `skopeo sync --dest docker` re-run",
           ("ratios", "skopeo_rerun_wall_over_ours_apply"), ">=", 5, "x", issue=23),
    *(t for backend in ("sqlite", "postgresql") for t in (
        Target("large_store", f"{backend}, 100,000 manifests: manifest GET p99 under 10 ms at 16 connections",
               (backend, "serve", "latency_p99_ms"), "<", 10, "ms", issue=24,
               applies=lambda p: list(p.get("large_store", ()))[:2] == [5000, 20] and p["wrk_connections"] == 16),
        Target("large_store", f"{backend}, 100,000 manifests: `store check --quick` under 30 s",
               (backend, "check_quick", "wall_s"), "<", 30, "s", issue=24, applies=_large),
        Target("large_store", f"{backend}, 100,000 manifests: `store gc` under 60 s", (backend, "gc", "wall_s"), "<",
               60, "s", issue=24, applies=_large),
        Target("large_store", f"{backend}, 100,000 manifests: `store du` under 2 s", (backend, "du", "wall_s"), "<", 2,
               "s", issue=24, applies=_large),
        Target("large_store", f"{backend}, 5,000 repositories: no-change `plan --no-refresh` under 5 s",
               (backend, "plan", "wall_s"), "<", 5, "s", issue=24, applies=_large))),
    *(t for name, label in (("folder", "PostgreSQL + folder"), ("cached", "PostgreSQL + S3 (moto)")) for t in (
        Target("serving_scaleout", f"{label}: manifest GET at least 1.0x the distribution registry",
               ("ratios", f"{name}_manifest_get_rps"), ">=", 1.0, "x", issue=24),
        Target("serving_scaleout", f"{label}: blob throughput at least 1.0x the distribution registry",
               ("ratios", f"{name}_blob_mb_per_s"), ">=", 1.0, "x", issue=24))),
)

_OPS = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


def _get(d: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def evaluate(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for t in TARGETS:
        sec = result["sections"].get(t.section)
        value = _get(sec, t.path) if sec and sec.get("status") == "ok" else None
        if sec is None:
            status = "not run"
        elif sec.get("status") != "ok":
            status = "error"
        elif not t.applies(result["params"]):
            status = "n/a (scale)"
        elif value is None and t.peer and t.peer not in sec:
            status = f"n/a (no {t.peer})"
        elif value is None:
            status = "error"
        else:
            status = "pass" if _OPS[t.op](value, t.bound) else "MISS"
        rows.append({"issue": t.issue, "section": t.section, "target": t.text, "bound": f"{t.op} {t.bound:g} {t.unit}".strip(),
                     "aim": t.aim, "measured": value, "status": status})
    return rows


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return out + [""]


def _detail(name: str, sec: dict[str, Any]) -> list[str]:
    out = [f"### {name}", ""]
    if sec.get("status") != "ok":
        out += [f"**error**: {sec.get('error', '?')}", ""]
    try:
        out += _tables(name, sec)
    except (KeyError, TypeError):  # a failed section has only what it measured before failing
        pass
    return out


def _tables(name: str, sec: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if name == "push":
        cols = ["wall_s", "cpu_s", "peak_rss_mb", "requests", "manifest_requests", "blob_requests",
                "source_requests", "source_get_bytes", "requests_per_tag"]
        rows = [[k] + [v.get(c) for c in cols] for k, v in sec.items() if isinstance(v, dict) and "wall_s" in v]
        out += ["Requests are the target registry's (`source_*`: the upstream's; ours reads blobs from its store).",
                ""]
        out += _table(["client"] + cols, rows)
    elif name in ("cold_sync", "refresh", "latency", "cold_sync_big"):
        cols = ["wall_s", "cpu_s", "peak_rss_mb", "mb_per_s", "requests", "manifest_requests", "blob_requests",
                "get_bytes", "requests_per_tag", "manifest_requests_per_tag"]
        rows = [[k] + [v.get(c) for c in cols] for k, v in sec.items() if isinstance(v, dict) and "wall_s" in v]
        out += _table(["client"] + cols, rows)
    elif name == "plan_scale":
        cols = ["repos", "tags", "wall_s", "cpu_s", "peak_rss_mb", "yaml_bytes", "populate_s"]
        out += _table(["desired state"] + cols, [[k] + [v.get(c) for c in cols] for k, v in sec.items()
                                                 if isinstance(v, dict) and "repos" in v])
    elif name == "startup":
        cols = ["wall_s", "min_wall_s", "cpu_s", "peak_rss_mb", "runs"]
        out += _table(["command"] + cols + ["wall of each run"],
                      [[k] + [v.get(c) for c in cols] + [" / ".join(_fmt(x) for x in v.get("walls_s", []))]
                       for k, v in sec.items() if isinstance(v, dict) and "wall_s" in v])
    elif name == "large_store":
        rows = []
        for backend in ("sqlite", "postgresql"):
            b = sec.get(backend)
            if not isinstance(b, dict):
                continue
            for step in ("check_quick", "du", "plan", "gc"):
                if step in b:
                    rows.append([backend, step, b[step]["wall_s"], b[step]["cpu_s"], b[step]["peak_rss_mb"], "-",
                                 "-", "-"])
            if "serve" in b:
                sv = b["serve"]
                rows.append([backend, "serve manifest GET", "-", "-", sv.get("peak_rss_mb"), sv["requests_per_s"],
                             sv["latency_p50_ms"], sv["latency_p99_ms"]])
        out += _table(["store", "command", "wall s", "cpu s", "peak RSS MB", "req/s", "p50 ms", "p99 ms"], rows)
        out += ["Populated by bench/large_store.py: " + ", ".join(
            f"{b} {sec[b].get('repos')} repositories / {sec[b].get('manifests')} manifests "
            + (f"in {sec[b]['populate_s']} s" if "populate_s" in sec[b] else
               f"restored from BENCH_LARGE_STORE_CACHE in {sec[b].get('restored_s')} s")
            for b in ("sqlite", "postgresql") if isinstance(sec.get(b), dict))
            + f"; serving load {sec.get('connections')} connections.", ""]
    elif name == "store_du":
        cols = ["repos", "manifests", "versions", "wall_s", "cpu_s", "peak_rss_mb", "populate_s"]
        out += _table(["store"] + cols, [[k] + [v.get(c) for c in cols] for k, v in sec.items()
                                         if isinstance(v, dict) and "repos" in v])
    elif name == "serving":
        rows = []
        for server in [s for s in ("registry", "ours") if s in sec]:
            for what in ("manifest_get", "manifest_head", "blob_get"):
                r = sec[server][what]
                rows.append([server, what, r["requests_per_s"], r.get("mb_per_s"), r["requests"], r["errors"],
                             r.get("latency_p50_ms"), r.get("latency_p99_ms"),
                             " / ".join(_fmt(x) for x in r.get("rounds_requests_per_s", []))])
        out += _table(["server", "load", "req/s (median round)", "MB/s", "requests", "errors", "p50 ms", "p99 ms",
                       "req/s of each round"], rows)
        out += [f"Load: {sec['load']}; server peak RSS (MB): "
                + ", ".join(f"{s} {sec[s]['peak_rss_mb']}" for s in ("registry", "ours") if s in sec), ""]
    elif name == "serving_scaleout":
        rows = []
        for replica in [s for s in ("registry", "folder", "cached", "uncached", "redirect") if s in sec]:
            for what in ("manifest_get", "manifest_head", "blob_get", "blob_redirect"):
                if what not in sec[replica]:
                    continue
                r = sec[replica][what]
                rows.append([replica, what, r["requests_per_s"], r.get("mb_per_s"), r["requests"], r["errors"],
                             r.get("latency_p50_ms"), r.get("latency_p99_ms"),
                             " / ".join(_fmt(x) for x in r.get("rounds_requests_per_s", []))])
        out += ["One replica at a time (`reconciler serve`, 2 workers) over a PostgreSQL store; `folder`: blobs "
                "and manifests in a folder, defaults; `cached`: in S3 (moto), defaults (manifest cache); "
                "`uncached`: S3, `--manifest-cache 0`; `redirect`: S3, `--blob-redirect` (307s counted, not "
                "followed); `registry`: the distribution registry, in rounds alternating with `folder` and "
                "`cached`.", ""]
        out += _table(["replica", "load", "req/s (median round)", "MB/s", "requests", "errors", "p50 ms", "p99 ms",
                       "req/s of each round"], rows)
        out += [f"Load: {sec['load']}; apply into PostgreSQL + folder: {sec.get('apply_folder_wall_s')} s, + S3: {sec.get('apply_wall_s')} s; replica peak RSS "
                "(MB): " + ", ".join(f"{s} {sec[s]['peak_rss_mb']}" for s in ("folder", "cached", "uncached", "redirect")
                                     if s in sec), ""]
    elif name == "memory":
        steps = (("registry_serve", "registry: serve to N clients"), ("sync", "ours: sync"),
                 ("serve", "ours: serve to N clients"))
        out += [f"Layer: {_fmt(sec['layer_bytes'])} bytes.", ""]
        out += _table(["step", "wall s", "MB/s", "peak RSS MB"], [
            [label.replace("N", str(sec[k].get("clients"))), sec[k]["wall_s"], sec[k]["mb_per_s"],
             sec[k]["peak_rss_mb"]] for k, label in steps if k in sec])
    notes = [v for k, v in sec.items() if k.endswith("_note")]
    out += [f"Note: {n}" for n in notes] + ([""] if notes else [])
    if "ratios" in sec:
        out += ["Ratios: " + ", ".join(f"{k} = {v}" for k, v in sec["ratios"].items()), ""]
    return out


def markdown(result: dict[str, Any]) -> str:
    m, f, p = result["machine"], result.get("fixtures", {}), result["params"]
    out = ["# Benchmarks", "",
           f"Generated by `make bench` (`python -m bench`, run `{result['name']}`) from "
           f"`bench/results/{result['name']}.json`; do not edit by hand. What each section measures: "
           "`bench/README.md`.", "",
           f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_mib']:,} MiB, Linux {m['kernel']}, "
           f"Python {m['python']}; {m['skopeo']}; {m['registry']}; {m['reconciler']} at `{m['git_commit'][:12]}`"
           f"{' (dirty)' if m['git_dirty'] else ''}; {m['date']}. Load average at start {m['loadavg_start']}, "
           f"at end {m.get('loadavg_end')} (other work on the machine shares its cores; wall times are noisy).", "",
           f"Fixtures: {f.get('repos')} repositories, {f.get('tags')} tags ({f.get('indexes')} multi-platform "
           f"indexes), {f.get('manifests')} manifests, {f.get('blobs')} blobs, {_fmt(f.get('blob_bytes'))} unique "
           f"blob bytes ({p['layers']} layers of {_fmt(p['layer_size'])} bytes per image).", "",
           "## Targets (issues 8 and 24)", ""]
    out += _table(["issue", "section", "target", "bound", "measured", "status"],
                  [[r.get("issue", 8), r["section"], r["target"] + (f" ({r['aim']})" if r["aim"] else ""), r["bound"], r["measured"],
                    r["status"]] for r in result["targets"]])
    if any(r["status"] == "MISS" for r in result["targets"]):
        out += ["Where a missed target's time goes and what meeting it would take: `bench/README.md` (its latest "
                "round's \"Misses\").", ""]
    out += ["## Sections", ""]
    for name, sec in result["sections"].items():
        out += _detail(name, sec)
    return "\n".join(out).rstrip() + "\n"
