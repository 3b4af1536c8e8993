"""``reconciler serve``: the read-only registry server, or Crane compatibility mode."""

from __future__ import annotations

import click

from reconciler import api_serve
from reconciler.cli.context import AppContext, pass_app
from reconciler.server.limits import ClientLimits, TrustedProxies


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True, help="Port to bind.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Worker processes (each with a few threads).")
@click.option("--threads", type=click.IntRange(1, 256), default=4, show_default=True, help="Threads per worker.")
@click.option("--htpasswd", type=click.Path(dir_okay=False), default=None,
              help="htpasswd file with bcrypt hashes (htpasswd -B) for protected repositories; "
                   "without --access, every user in it may pull every protected repository.")
@click.option("--access", type=click.Path(dir_okay=False), default=None,
              help="YAML file granting each protected repository (glob patterns) to htpasswd users; "
                   "needs --htpasswd. A user it does not grant a name gets 404, as for a missing name.")
@click.option("--blob-redirect", is_flag=True,
              help="Answer blob GETs with a 307 redirect to a presigned object-storage URL (S3 blobs only).")
@click.option("--redirect-expires", type=click.IntRange(1, 7 * 24 * 3600), default=api_serve.DEFAULT_REDIRECT_EXPIRES,
              show_default=True,
              metavar="SECONDS", help="How long a presigned blob URL stays valid.")
@click.option("--s3-timeout", type=click.FloatRange(0.1, 600), default=3.0, show_default=True, metavar="SECONDS",
              help="Connect and read timeout of each request to S3 blob storage; a stalled S3 costs a client "
                   "this (times --s3-attempts), then a 503 with Retry-After.")
@click.option("--s3-attempts", type=click.IntRange(1, 10), default=2, show_default=True,
              help="Attempts per S3 request (1: no retry).")
@click.option("--manifest-cache", type=click.IntRange(0, 65536), default=64, show_default=True, metavar="MIB",
              help="Manifest bytes each worker keeps in memory (0: none); manifests are immutable by digest.")
@click.option("--forwarded-allow-ips", default="", metavar="ADDRESSES",
              help="Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For (the client) "
                   "and X-Forwarded-Proto are believed (e.g. 127.0.0.1 for nginx on this host). Default: none.")
@click.option("--client-timeout", type=click.IntRange(1, 3600), default=10, show_default=True, metavar="SECONDS",
              help="Time a client has to send a whole request (then 408 and close); slow clients hold no thread "
                   "meanwhile.")
@click.option("--keepalive", type=click.IntRange(0, 3600), default=30, show_default=True, metavar="SECONDS",
              help="How long an idle kept-alive connection stays open (0: close after each answer).")
@click.option("--max-client-connections", type=click.IntRange(1, 100_000), default=100, show_default=True,
              metavar="N", help="Open connections one client address may hold in each worker process "
                                "(trusted proxies exempt); more are refused with 429.")
@click.option("--crane-data-dir", type=click.Path(file_okay=False), default=None,
              help="Crane compatibility mode: serve the app files (*.json, v1-v4) under this directory "
                   "instead of the store.")
@click.option("--crane-poll-interval", type=click.IntRange(0, 86400), default=None,
              help="Crane mode: seconds between checks of the data directory for changes [default: 60].")
@click.option("--crane-config", type=click.Path(dir_okay=False), default=None,
              help="Crane mode: a crane.conf file ([general] data_dir, data_dir_polling_interval, endpoint, "
                   "debug; [serve_content]); command-line options win.")
@pass_app
def serve_cmd(app: AppContext, host: str, port: int, workers: int, threads: int, htpasswd: str | None,
              access: str | None, blob_redirect: bool, redirect_expires: int, s3_timeout: float,
              s3_attempts: int, manifest_cache: int, forwarded_allow_ips: str, client_timeout: int, keepalive: int,
              max_client_connections: int, crane_data_dir: str | None,
              crane_poll_interval: int | None, crane_config: str | None) -> None:
    """Serve published repositories over the registry pull API (read-only).

    Runs until SIGTERM (graceful: in-flight downloads get 10 s to finish) or Ctrl-C
    (immediate: in-flight transfers are cut); one access log line per request on stderr.
    Needs an existing store (it is never created here).

    GET /healthz answers 200 while the process serves; GET /readyz 200 when the
    database answers and the object storage is known to be this store's and not
    failing, else 503 (for load balancers; no credentials needed). Each worker opens
    at most --threads database connections. See docs/deployment.md.

    With --crane-data-dir or --crane-config it serves Crane app files (Pulp's publish, or
    `reconciler export --format crane`) exactly as Crane did, redirecting to the static
    files at each app file's url; the store is not used. See docs/server.md.

    --access FILE limits each protected repository to the users its rules name
    (docs/server.md, "Per-repository access"); public repositories stay public.

    Slow and idle clients hold no request thread: each worker reads requests in an event
    loop and hands only whole ones to its threads (docs/server.md, "Slow and idle
    clients"). Behind a reverse proxy, name it with --forwarded-allow-ips.

    \b
    Example:
      reconciler serve --port 5000 --workers 4 --htpasswd /etc/reconciler/htpasswd
      reconciler serve --htpasswd /etc/reconciler/htpasswd --access /etc/reconciler/access.yaml
      skopeo inspect --tls-verify=false docker://127.0.0.1:5000/pulpdemo/synctest:latest
      reconciler --store /srv/store --blobs s3://images/prod serve --blob-redirect
      reconciler serve --crane-data-dir /srv/crane/app --crane-poll-interval 10
    """
    if access is not None and htpasswd is None:
        raise click.UsageError("--access needs --htpasswd: the access file names users of an htpasswd file")
    clients = ClientLimits(request_timeout=client_timeout, keepalive=keepalive,
                           max_client_connections=max_client_connections,
                           trusted_proxies=TrustedProxies.parse(forwarded_allow_ips))
    if crane_data_dir is not None or crane_config is not None:
        if blob_redirect:
            raise click.UsageError("--blob-redirect is for the store's blobs; Crane mode redirects as its app files say")
        config = api_serve.crane_config(crane_config, data_dir=crane_data_dir, polling_interval=crane_poll_interval)
        api_serve.serve_crane(config, host=host, port=port, workers=workers, threads=threads, htpasswd=htpasswd,
                        access=access, clients=clients)
        return
    if crane_poll_interval is not None:
        raise click.UsageError("--crane-poll-interval needs --crane-data-dir or --crane-config")
    api_serve.serve(app.store_location, host=host, port=port, workers=workers, threads=threads, htpasswd=htpasswd,
              access=access, blobs=app.blobs_location, blob_redirect=redirect_expires if blob_redirect else None,
              s3_timeout=s3_timeout, s3_attempts=s3_attempts, manifest_cache=manifest_cache * 1024 * 1024,
              clients=clients)


def register(cli: click.Group) -> None:
    cli.add_command(serve_cmd)
