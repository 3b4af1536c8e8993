"""Section 6, serving in the scale-out shape: PostgreSQL stores filled by one ``reconciler
apply`` of the fixture mirror, one with blobs and manifests in a folder, one in S3 (moto's
standalone server, the test suite's S3 double, on loopback), served by ``reconciler serve``:

* ``folder``: PostgreSQL + folder, defaults; ``cached``: PostgreSQL + S3, defaults (the
  per-worker manifest cache); their rounds alternate with rounds against the distribution
  registry (the upstream, ``registry``), which they are compared with;
* ``uncached``: PostgreSQL + S3 with ``--manifest-cache 0``;
* ``redirect``: PostgreSQL + S3 with ``--blob-redirect``.

Same loads as the ``serving`` section (manifest GET by tag, manifest HEAD, blob GET
streamed through the replica), plus blob GETs answered with ``--blob-redirect`` (307 to a
presigned URL; wrk does not follow it, so that row counts redirects handed out).

moto is no real S3: it answers a few hundred requests per second on this machine, so the
uncached manifest GET and the streamed blob GET measure moto as much as us; the cached
manifest GET and the HEADs (from the database) do not touch it. PostgreSQL and moto are
started the way the tests start them (``tests/support``).
"""

from __future__ import annotations

import sys
from typing import Any

from bench import proc, wrk
from bench.harness import Context, SectionError, require_tool
from bench.registry import free_port
from bench.sections.large_store import postgres
from bench.sections.serving import load_paths, median_rounds, started_server, tree_peak_rss_kib


def _moto(ctx: Context) -> dict[str, str]:
    """moto's S3 server up (stopped by the context's cleanups): its AWS environment."""
    from tests.support.s3server import start_s3_server
    from tests.support.serving import stop

    try:
        s3 = start_s3_server(ctx.work)
    except BaseException as exc:  # its helpers end a test with pytest.fail, a BaseException
        raise SectionError(f"moto_server could not be started: {exc} (pip install 'moto[server]')") from None

    def stop_moto() -> None:
        stop(s3.proc)

    ctx.cleanups.append(stop_moto)
    return s3.env


def _serve(ctx: Context, store: str, env: dict[str, str], name: str, *args: str) -> tuple[str, Any]:
    port = free_port()
    cmd = [sys.executable, "-m", "reconciler", "--store", store, "serve", "--port", str(port), *args]
    return started_server(ctx, cmd, port, name, env, ready="/readyz", wait=60)


def _hammer(ctx: Context, url: str, tag_paths: list[str], blob_paths: list[str], *,
            redirect: bool) -> dict[str, Any]:
    p = ctx.params
    kw = {"threads": p.wrk_threads, "connections": p.wrk_connections, "seconds": p.wrk_seconds}
    out = {"manifest_get": wrk.load(url, tag_paths, "GET", ctx.work / "so-manifests.lua", **kw),
           "manifest_head": wrk.head_load(url, tag_paths[0], connections=p.wrk_connections, seconds=p.wrk_seconds)}
    out["blob_redirect" if redirect else "blob_get"] = wrk.load(url, blob_paths, "GET", ctx.work / "so-blobs.lua", **kw)
    for what, res in out.items():
        if res["errors"] > res["requests"] * 0.01 or not res["requests"]:
            raise SectionError(f"{what} against {url}: {res['errors']} errors in {res['requests']} requests")
    return out


def _fill(ctx: Context, url_db: str, env: dict[str, str]) -> float:
    fill = proc.run([sys.executable, "-m", "reconciler", "--store", url_db, "apply", "-f", str(ctx.repos_yaml)],
                    env=env, timeout=1800)
    if fill.returncode != 0:
        raise SectionError(f"apply into PostgreSQL + {env['RECONCILER_BLOBS']} failed: {fill.stderr[-1500:]}")
    return round(fill.wall_s, 2)


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_tool("wrk", "wrk")
    require_tool("ab", "apache2-utils")
    if not ctx.repos_yaml.is_file():
        raise SectionError("serving_scaleout applies the cold sync's repos.yaml: run the cold_sync section first")
    tag_paths, blob_paths = load_paths(ctx)
    pg = postgres(ctx)
    aws = _moto(ctx)
    stores = {"folder": (pg.new_database(), {**proc.reconciler_env(), "RECONCILER_BLOBS": str(ctx.work / "pg-blobs")}),
              "s3": (pg.new_database(), {**proc.reconciler_env(), **aws,
                                         "RECONCILER_BLOBS": "s3://reconciler-test/bench"})}
    out.update({"tag_paths": len(tag_paths), "blob_paths": len(blob_paths),
                "load": {"threads": ctx.params.wrk_threads, "connections": ctx.params.wrk_connections,
                         "seconds": ctx.params.wrk_seconds}})
    for name, (url_db, env) in stores.items():
        out[f"apply_{name}_wall_s"] = _fill(ctx, url_db, env)
    out["apply_wall_s"] = out["apply_s3_wall_s"]
    # the registry and the two default replicas, round by round: the same minutes of load
    rounds: dict[str, list[dict[str, Any]]] = {"registry": [], "folder": [], "cached": []}
    servers = {"folder": _serve(ctx, stores["folder"][0], stores["folder"][1], "so-folder"),
               "cached": _serve(ctx, stores["s3"][0], stores["s3"][1], "so-cached")}
    try:
        for _ in range(ctx.params.serving_rounds):
            rounds["registry"].append(_hammer(ctx, ctx.upstream.url, tag_paths, blob_paths, redirect=False))
            for name, (url, _) in servers.items():
                rounds[name].append(_hammer(ctx, url, tag_paths, blob_paths, redirect=False))
        for name, (_, server) in servers.items():
            out[name] = median_rounds(rounds[name])
            out[name]["peak_rss_mb"] = round(tree_peak_rss_kib(server.pid) / 1024, 1)
    finally:
        for _, server in servers.values():
            proc.stop_server(server)
    out["registry"] = median_rounds(rounds["registry"])
    url_db, env = stores["s3"]
    for name, args in {"uncached": ("--manifest-cache", "0"), "redirect": ("--blob-redirect",)}.items():
        url, server = _serve(ctx, url_db, env, f"so-{name}", *args)
        rounds[name] = []
        try:
            for _ in range(ctx.params.serving_rounds):
                rounds[name].append(_hammer(ctx, url, tag_paths, blob_paths, redirect=name == "redirect"))
            out[name] = median_rounds(rounds[name])
            out[name]["peak_rss_mb"] = round(tree_peak_rss_kib(server.pid) / 1024, 1)
        finally:
            proc.stop_server(server)
    reg = out["registry"]
    out["ratios"] = {"manifest_get_cached_over_uncached": round(
        out["cached"]["manifest_get"]["requests_per_s"] / out["uncached"]["manifest_get"]["requests_per_s"], 3)}
    for name in ("folder", "cached"):
        out["ratios"][f"{name}_manifest_get_rps"] = round(
            out[name]["manifest_get"]["requests_per_s"] / reg["manifest_get"]["requests_per_s"], 3)
        out["ratios"][f"{name}_blob_mb_per_s"] = round(
            out[name]["blob_get"]["mb_per_s"] / reg["blob_get"]["mb_per_s"], 3)
