"""``reconciler serve``: the read-only registry server."""

from __future__ import annotations

import click

from reconciler import api
from reconciler.cli.context import AppContext, pass_app


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True, help="Port to bind.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Worker processes (each with a few threads).")
@click.option("--threads", type=click.IntRange(1, 256), default=4, show_default=True, help="Threads per worker.")
@click.option("--htpasswd", type=click.Path(dir_okay=False), default=None,
              help="htpasswd file with bcrypt hashes (htpasswd -B) for protected repositories.")
@click.option("--blob-redirect", is_flag=True,
              help="Answer blob GETs with a 307 redirect to a presigned object-storage URL (S3 blobs only).")
@click.option("--redirect-expires", type=click.IntRange(1, 7 * 24 * 3600), default=300, show_default=True,
              metavar="SECONDS", help="How long a presigned blob URL stays valid.")
@pass_app
def serve_cmd(app: AppContext, host: str, port: int, workers: int, threads: int, htpasswd: str | None,
              blob_redirect: bool, redirect_expires: int) -> None:
    """Serve published repositories over the registry pull API (read-only).

    Runs until SIGTERM (graceful: in-flight downloads get 10 s to finish) or Ctrl-C
    (immediate); one access log line per request on stderr.

    \b
    Example:
      reconciler serve --port 5000 --workers 4 --htpasswd /etc/reconciler/htpasswd
      skopeo inspect --tls-verify=false docker://127.0.0.1:5000/pulpdemo/synctest:latest
      reconciler --store /srv/store --blobs s3://images/prod serve --blob-redirect
    """
    api.serve(app.store_location, host=host, port=port, workers=workers, threads=threads, htpasswd=htpasswd,
              blobs=app.blobs_location, blob_redirect=redirect_expires if blob_redirect else None)


def register(cli: click.Group) -> None:
    cli.add_command(serve_cmd)
