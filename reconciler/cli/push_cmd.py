"""``reconciler push REPO --to REGISTRY_URL/NAME``: push a repository's tags into another
registry once, planned and applied as a ``push:`` target of repos.yaml is (issue 23)."""

from __future__ import annotations

import sys

import click

from reconciler import api
from reconciler.cli.context import AppContext, echo_json, human_bytes, pass_app
from reconciler.cli.progress import ProgressRenderer
from reconciler.plan.render_text import action_line


@click.command("push")
@click.argument("repo_id")
@click.option("--to", "to", required=True, metavar="REGISTRY_URL/NAME",
              help="The target repository, e.g. https://harbor.example.com/team/app (http:// for a plain-HTTP one).")
@click.option("--tags", "tags", multiple=True, metavar="GLOB",
              help="Push only matching tags (repeatable; 're:' = regex). Default: every tag.")
@click.option("--username-env", metavar="VAR", help="Environment variable holding the target's user name.")
@click.option("--password-env", metavar="VAR", help="Environment variable holding the target's password/token.")
@click.option("--auth-file", type=click.Path(dir_okay=False), help="A docker/podman auth.json with credentials.")
@click.option("--tls-verify/--no-tls-verify", default=True, show_default=True, help="Verify TLS certificates.")
@click.option("--ca-file", type=click.Path(dir_okay=False), help="CA bundle for the target's certificate.")
@click.option("--jobs", type=click.IntRange(1, 64), default=16, show_default=True, help="Parallel requests.")
@click.option("--timeout", type=click.FloatRange(0, 3600, min_open=True), default=60.0, show_default=True,
              help="Seconds a response may stall before the attempt fails (and is retried).")
@click.option("--retries", type=click.IntRange(0, 20), default=4, show_default=True,
              help="Retries of a temporary failure (reset, stall, 408/429/5xx).")
@click.option("--lock-timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the store lock.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and the result as JSON.")
@pass_app
def push_cmd(app: AppContext, repo_id: str, to: str, tags: tuple[str, ...], username_env: str | None,
             password_env: str | None, auth_file: str | None, tls_verify: bool, ca_file: str | None, jobs: int,
             timeout: float, retries: int, lock_timeout: float, as_json: bool) -> None:
    """Push REPO_ID's tags (all, or those --tags selects) to REGISTRY_URL/NAME.

    One HEAD per tag at the target decides what must go; for those, the blobs the target
    lacks go first (mounted from another repository of the target we pushed to, when it
    holds them), then manifests, then the tags, each verified by the target's digest. A
    failure leaves every tag not yet moved where it was. Like every one-off command it
    makes no journal entry: the output (--json) says per target what was pushed.

    \b
    Examples:
      reconciler push web --to https://harbor.example.com/team/web --username-env HARBOR_USER \\
          --password-env HARBOR_TOKEN
      reconciler push web --to http://127.0.0.1:5000/mirror/web --tags 'v1.*' --json
    """
    renderer = None if app.quiet else ProgressRenderer(tty=sys.stderr.isatty(), phases=True)
    try:
        plan, result = api.push_repository(app.store, repo_id, to, tags=tags, username_env=username_env,
                                           password_env=password_env, auth_file=auth_file, tls_verify=tls_verify,
                                           ca_file=ca_file, timeout=timeout, retries=retries, jobs=jobs,
                                           lock_timeout=lock_timeout, progress=renderer)
    finally:
        if renderer is not None:
            renderer.close()
    if as_json:
        echo_json({"ok": not plan.errors and result.ok, "plan": [a.to_json() for a in plan.actions],
                   "errors": [e.to_json() for e in plan.errors], "requests": plan.refresh.requests,
                   "result": result.to_json()})
    else:
        for a in plan.actions:
            click.echo(f"{a.change.value} {action_line(a, plan)}")
        for e in plan.errors:
            click.echo(f"error: {e}", err=True)
        for target, done in result.pushes.items():
            uploaded = done.get("blobs_uploaded", 0)
            size = human_bytes(int(done.get("bytes_uploaded", 0) or 0))  # type: ignore[call-overload]
            click.echo(f"{target}: {len(done.get('tags', []) or [])} tags pushed"  # type: ignore[arg-type]
                       f", {uploaded} blobs uploaded ({size}), {done.get('blobs_mounted', 0)} mounted, "
                       f"{done.get('blobs_present', 0)} already there"
                       + (f"; error: {done['error']}" if "error" in done else ""))
        if not plan.actions and not plan.errors:
            click.echo(f"{to} is up to date. No changes.")
    if plan.errors or not result.ok:
        raise click.exceptions.Exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(push_cmd)
