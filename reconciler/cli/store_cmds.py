"""``reconciler store check`` and ``reconciler store gc``."""

from __future__ import annotations

import click

from reconciler.cli.context import AppContext, echo_json, human_bytes, pass_app


@click.group("store")
def store_group() -> None:
    """Inspect and maintain the store."""


@store_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quick", is_flag=True, help="Skip re-hashing every stored file (references only).")
@pass_app
def check_cmd(app: AppContext, as_json: bool, quick: bool) -> None:
    """Verify that every version is complete and every stored file hashes to its digest.

    Exits 1 when a problem is found.

    \b
    Example:
      reconciler store check
    """
    report = app.store.check(verify_content=not quick)
    if as_json:
        echo_json({
            "ok": report.ok,
            "store": app.store.location,
            "blobs_checked": report.blobs_checked,
            "manifests_checked": report.manifests_checked,
            "versions_checked": report.versions_checked,
            "problems": [p.to_json() for p in report.problems],
        })
    else:
        for p in report.problems:
            click.echo(f"{p.kind}: {p.subject}: {p.message}")
        status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        click.echo(f"store {app.store.location}: {report.blobs_checked} blobs, {report.manifests_checked} manifests, "
                   f"{report.versions_checked} versions checked: {status}")
    if not report.ok:
        raise click.exceptions.Exit(1)


@store_group.command("gc")
@click.option("--lock-timeout", default=60.0, show_default=True, help="Seconds to wait for the store lock.")
@pass_app
def gc_cmd(app: AppContext, lock_timeout: float) -> None:
    """Remove blobs and manifests that no repository version references.

    \b
    Example:
      reconciler store gc
    """
    with app.store.lock(lock_timeout):
        report = app.store.gc()
    click.echo(f"removed {report.blobs_removed} blobs and {report.manifests_removed} manifests "
               f"({human_bytes(report.bytes_freed)}), {report.temp_files_removed} stale temp files")


def register(cli: click.Group) -> None:
    cli.add_command(store_group)
