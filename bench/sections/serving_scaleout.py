"""Section 6, serving in the scale-out shape: a PostgreSQL store with blobs and manifests in
S3 (moto's standalone server, the test suite's S3 double, on loopback), filled by one
``reconciler apply`` of the fixture mirror, served by ``reconciler serve`` twice: with the
per-worker manifest cache (the default) and without it (``--manifest-cache 0``). Same
loads as the ``serving`` section (manifest GET by tag, manifest HEAD, blob GET streamed
through the replica), plus blob GETs answered with ``--blob-redirect`` (307 to a
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
from bench.sections.serving import load_paths, median_rounds, started_server, tree_peak_rss_kib


def _started(ctx: Context) -> tuple[str, dict[str, str]]:
    """PostgreSQL and moto up (stopped by the context's cleanups): (a database URL, AWS env)."""
    from tests.support.postgres import PostgresServer
    from tests.support.s3server import start_s3_server
    from tests.support.serving import stop

    try:
        pg = PostgresServer.start()
    except BaseException as exc:  # its helpers end a test with pytest.fail, which is a BaseException
        raise SectionError(f"PostgreSQL could not be started: {exc} (scripts/setup.sh --test installs it)") from None
    ctx.cleanups.append(pg.stop)
    try:
        s3 = start_s3_server(ctx.work)
    except BaseException as exc:
        raise SectionError(f"moto_server could not be started: {exc} (pip install 'moto[server]')") from None

    def stop_moto() -> None:
        stop(s3.proc)

    ctx.cleanups.append(stop_moto)
    return pg.new_database(), s3.env


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


def run(ctx: Context, out: dict[str, Any]) -> None:
    require_tool("wrk", "wrk")
    require_tool("ab", "apache2-utils")
    if not ctx.repos_yaml.is_file():
        raise SectionError("serving_scaleout applies the cold sync's repos.yaml: run the cold_sync section first")
    tag_paths, blob_paths = load_paths(ctx)
    url_db, aws = _started(ctx)
    blobs = "s3://reconciler-test/bench"
    env = {**proc.reconciler_env(), **aws, "RECONCILER_BLOBS": blobs}
    fill = proc.run([sys.executable, "-m", "reconciler", "--store", url_db, "apply", "-f", str(ctx.repos_yaml)],
                    env=env, timeout=1800)
    if fill.returncode != 0:
        raise SectionError(f"apply into PostgreSQL + S3 failed: {fill.stderr[-1500:]}")
    out.update({"tag_paths": len(tag_paths), "blob_paths": len(blob_paths), "apply_wall_s": round(fill.wall_s, 2),
                "load": {"threads": ctx.params.wrk_threads, "connections": ctx.params.wrk_connections,
                         "seconds": ctx.params.wrk_seconds}})
    servers = {"cached": (), "uncached": ("--manifest-cache", "0"), "redirect": ("--blob-redirect",)}
    rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in servers}
    for name, args in servers.items():
        url, server = _serve(ctx, url_db, env, f"so-{name}", *args)
        try:
            for _ in range(ctx.params.serving_rounds):
                rounds[name].append(_hammer(ctx, url, tag_paths, blob_paths, redirect=name == "redirect"))
            out[name] = median_rounds(rounds[name])
            out[name]["peak_rss_mb"] = round(tree_peak_rss_kib(server.pid) / 1024, 1)
        finally:
            proc.stop_server(server)
    out["ratios"] = {"manifest_get_cached_over_uncached": round(
        out["cached"]["manifest_get"]["requests_per_s"] / out["uncached"]["manifest_get"]["requests_per_s"], 3)}
