"""``reconciler store check|gc|du|backup|restore|relocate``."""

from __future__ import annotations

import click

from reconciler import api
from reconciler.cli.context import AppContext, echo_json, human_bytes, pass_app
from reconciler.store import recovery


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
    report = app.existing_store.check(verify_content=not quick)
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
@click.option("--dry-run", is_flag=True, help="Say what gc would remove; remove and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--lock-timeout", default=60.0, show_default=True, help="Seconds to wait for the store lock.")
@pass_app
def gc_cmd(app: AppContext, dry_run: bool, as_json: bool, lock_timeout: float) -> None:
    """Remove blobs and manifests that no repository version holds.

    Runs under the store lock (it waits for a running apply). Also removes the
    temporary files of writers that died (a killed apply). What old versions held comes
    back only once they are dropped (retain_versions, `repo prune-versions`).

    \b
    Examples:
      reconciler store gc --dry-run
      reconciler store gc --json
    """
    from reconciler.apply.observer import current

    observer = current()  # sees each step (the crash tests install one); the default sees nothing
    try:
        report = app.existing_store.gc(dry_run=dry_run, lock_timeout=lock_timeout,
                                       events=lambda what: observer.event("gc", what))
    finally:
        observer.close()
    if as_json:
        echo_json(report.to_json())
        return
    counts = f"{_count(report.blobs_removed, 'blob')}, {_count(report.manifests_removed, 'manifest')}"
    if report.temp_files_removed:
        counts += f", {_count(report.temp_files_removed, 'temporary file')}"
    if dry_run:
        click.echo(f"would free {human_bytes(report.bytes_freed)}: {counts} (dry run: nothing was removed)")
    else:
        click.echo(f"freed {human_bytes(report.bytes_freed)}: {counts}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


@store_group.command("du")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def du_cmd(app: AppContext, as_json: bool) -> None:
    """Show where the store's bytes are, per repository.

    \b
    Columns (blob and manifest bytes, each counted once per repository):
      VERSIONS  how many versions the repository has
      LATEST    held by its latest version
      UNIQUE    held by no other repository: what deleting it frees
      OLD       held only by its old versions that retention may drop (not the latest,
                not the published one): what `repo prune-versions ID --keep 1` frees
    Totals: every stored byte, and what no version holds (freed by `store gc`).

    \b
    Example:
      reconciler store du
    """
    usage = app.existing_store.usage()
    if as_json:
        echo_json(usage.to_json())
        return
    rows = [(r.id, str(r.versions), human_bytes(r.bytes), human_bytes(r.unique_bytes),
             human_bytes(r.old_versions_bytes)) for r in usage.repositories]
    header = ("REPOSITORY", "VERSIONS", "LATEST", "UNIQUE", "OLD")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]))
    click.echo(f"total {human_bytes(usage.total_bytes)}; unreferenced (freed by `store gc`) "
               f"{human_bytes(usage.unreferenced_bytes)}; held only by old versions "
               f"{human_bytes(sum(r.old_versions_bytes for r in usage.repositories))}")


@store_group.command("backup")
@click.option("--to", "folder", required=True, type=click.Path(file_okay=False),
              help="Backup folder: new or empty, or the folder of an earlier backup (only new files are copied).")
@click.option("--lock-timeout", default=60.0, show_default=True,
              help="Seconds to wait for a running `store gc` (gc waits for backups, applies do not).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def backup_cmd(app: AppContext, folder: str, lock_timeout: float, as_json: bool) -> None:
    """Back up the store while it serves and applies: a consistent snapshot of the
    database (SQLite's online backup API, or pg_dump of one exported snapshot), then
    every file it names, then a verification pass.

    \b
    Examples:
      reconciler store backup --to /backup/reconciler
      reconciler --store postgresql://reconciler@db/reconciler --blobs s3://images/prod store backup --to /backup/rc
    """
    info = recovery.backup_store(app.existing_store, folder, timeout=lock_timeout)
    if as_json:
        echo_json({"folder": folder, **info.to_json()})
        return
    click.echo(f"backed up {info.source} (generation {info.generation}): {info.blobs} blobs, {info.manifests} "
               f"manifests, {human_bytes(info.bytes)}; {info.copied} files copied, the rest already there; "
               f"verified -> {folder}")


@store_group.command("restore")
@click.option("--from", "folder", required=True, type=click.Path(exists=True, file_okay=False),
              help="The folder `store backup --to` wrote.")
@click.option("--force", is_flag=True, help="Replace the store the target already holds (in place).")
@click.option("--keep-identity", is_flag=True,
              help="Keep the backed-up store's identity: the restore replaces that store after a loss. Default: "
                   "a new identity, so the restored store never writes to or collects the original's blobs.")
@click.option("--lock-timeout", default=60.0, show_default=True, help="Seconds to wait for the target's store lock.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def restore_cmd(app: AppContext, folder: str, force: bool, keep_identity: bool, lock_timeout: float,
                as_json: bool) -> None:
    """Restore a backup into the store given with --store (and --blobs), then verify it.

    A target that holds a store is refused unless --force; a running `serve` on it keeps
    serving and picks up the restored store.

    \b
    Examples:
      reconciler --store /srv/reconciler-restored store restore --from /backup/reconciler
      reconciler --store /srv/reconciler store restore --from /backup/reconciler --force
      reconciler --store postgresql://reconciler@db2/reconciler --blobs s3://images/drill store restore --from /backup/rc
    """
    where = api.store_location(app.store_location)
    info, report = recovery.restore_store(folder, where, api.blobs_location(app.blobs_location), force=force,
                                          keep_identity=keep_identity, timeout=lock_timeout)
    if as_json:
        echo_json({"store": where, "backup": info.to_json(), "ok": report.ok, "blobs_checked": report.blobs_checked,
                   "manifests_checked": report.manifests_checked, "versions_checked": report.versions_checked})
        return
    click.echo(f"restored {folder} (taken from {info.source} at {info.created}, generation {info.generation}) into "
               f"{where}: {report.blobs_checked} blobs, {report.manifests_checked} manifests, "
               f"{report.versions_checked} versions checked: ok"
               + ("" if keep_identity else "; the restored store has a new identity"))


@store_group.command("relocate")
@click.option("--blobs", "blobs", metavar="DIR|URL", default=None,
              help="Where the blobs are now (an embedded store's blob folder or s3:// prefix that moved). "
                   "A PostgreSQL store takes the global --blobs instead.")
@click.option("--force", is_flag=True,
              help="Take over the blob storage although the store it was bound to may still exist.")
@click.option("--lock-timeout", default=60.0, show_default=True, help="Seconds to wait for the store lock.")
@pass_app
def relocate_cmd(app: AppContext, blobs: str | None, force: bool, lock_timeout: float) -> None:
    """Bind the store to its blob storage again after a move: a blob folder that moved
    (--blobs NEWDIR), or a store directory or database that moved (claims its blobs,
    with a new store identity, so a left-behind copy can no longer write to them).

    \b
    Examples:
      reconciler store relocate --blobs /mnt/new-disk/reconciler-blobs
      reconciler --store /srv/moved-store store relocate
    """
    done = recovery.relocate_store(app.existing_store, blobs, force=force, lock_timeout=lock_timeout)
    what = f"took over {done.storage} from the store at {done.claimed_from.partition(':')[2]}" if done.claimed_from \
        else f"bound to {done.storage}"
    new = f"; new store id {done.store_id}" if done.store_id != done.old_id else ""
    click.echo(f"store {app.existing_store.location}: {what}{new}")


def register(cli: click.Group) -> None:
    cli.add_command(store_group)
