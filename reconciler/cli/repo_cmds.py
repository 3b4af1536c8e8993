"""``reconciler repo list|show|history|diff|prune-versions|create|delete``."""

from __future__ import annotations

import click

from reconciler.cli.context import AppContext, echo_json, human_bytes, pass_app
from reconciler.model.reference import check_upstream_name
from reconciler.model.repository import version_ranges


@click.group("repo")
def repo_group() -> None:
    """List, show and manage repositories."""


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@repo_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_cmd(app: AppContext, as_json: bool) -> None:
    """List repositories with their latest version and publication."""
    repos = app.store.repository_list()
    if as_json:
        echo_json([{"id": r.id, "latest_version": r.latest_version, "feed": r.feed,
                    "upstream_name": r.upstream_name, "publish_name": r.publish_name,
                    "published_version": r.published_version, "protected": r.protected} for r in repos])
        return
    if not repos:
        click.echo("no repositories")
        return
    for r in repos:
        pub = f"published as {r.publish_name}@{r.published_version}" if r.published_version is not None else "not published"
        click.echo(f"{r.id}\tversion {r.latest_version}\t{pub}")


@repo_group.command("show")
@click.argument("repo_id")
@click.option("--version", "number", type=int, default=None, help="Show this version instead of the latest.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def show_cmd(app: AppContext, repo_id: str, number: int | None, as_json: bool) -> None:
    """Show a repository's tags and content counts.

    \b
    Example:
      reconciler repo show synctest --json
    """
    repo = app.store.repository_get(repo_id)
    version = app.store.version_get(repo_id, number)
    tags = {name: str(e.digest) for name, e in sorted(version.tags.items())}
    v1 = app.store.v1_version_get(repo_id, version.number)
    if as_json:
        echo_json({
            "id": repo.id, "version": version.number, "latest_version": repo.latest_version,
            "feed": repo.feed, "upstream_name": repo.upstream_name,
            "publish_name": repo.publish_name, "published_version": repo.published_version,
            "protected": repo.protected,
            "tags": tags,
            "tag_origins": {name: e.origin.value for name, e in sorted(version.tags.items())},
            "counts": {**version.content.counts(), "tags": len(tags)},
            "v1_images": sorted(v1.images),
            "v1_tags": dict(sorted(v1.tags.items())),
        })
        return
    click.echo(f"repository {repo.id} (version {version.number} of {repo.latest_version})")
    if repo.feed:
        click.echo(f"  feed: {repo.feed} {repo.upstream_name or ''}")
    if repo.publish_name:
        state = f"version {repo.published_version}" if repo.published_version is not None else "unpublished"
        click.echo(f"  publish name: {repo.publish_name} ({state}{', protected' if repo.protected else ''})")
    counts = version.content.counts()
    click.echo("  content: " + ", ".join(_count(counts[k], one, many) for k, one, many in (
        ("manifests", "manifest", "manifests"), ("indexes", "index", "indexes"), ("blobs", "blob", "blobs"))))
    click.echo(f"  tags ({len(tags)}):")
    for name, entry in sorted(version.tags.items()):
        click.echo(f"    {name}\t{entry.digest}\t{entry.origin.value}")
    if not v1.empty:
        masked = f" (masked: {', '.join(sorted(v1.masked))})" if v1.masked else ""
        click.echo(f"  v1 images: {len(v1.images)}{masked}")
        click.echo(f"  v1 tags ({len(v1.tags)}):")
        for name, image_id in sorted(v1.tags.items()):
            click.echo(f"    {name}\t{image_id}")


@repo_group.command("history")
@click.argument("repo_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def history_cmd(app: AppContext, repo_id: str, as_json: bool) -> None:
    """List a repository's versions: what each added and removed."""
    versions = app.store.version_list(repo_id)
    if as_json:
        echo_json([{"number": v.number, "created": v.created, "operation": v.operation,
                    **v.summary.to_json()} for v in versions])
        return
    for v in versions:
        added = ", ".join(f"+{n} {k}" for k, n in v.summary.added.items() if n)
        removed = ", ".join(f"-{n} {k}" for k, n in v.summary.removed.items() if n)
        changes = "; ".join(x for x in (added, removed) if x) or "no content changes"
        click.echo(f"{v.number}\t{v.created}\t{v.operation}\t{changes}")


@repo_group.command("prune-versions")
@click.argument("repo_id")
@click.option("--keep", type=click.IntRange(min=1), required=True, metavar="N",
              help="Keep the newest N versions (at least 1).")
@click.option("--dry-run", is_flag=True, help="Say what would be dropped; drop nothing.")
@click.option("--lock-timeout", default=60.0, show_default=True, help="Seconds to wait for the store lock.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def prune_versions_cmd(app: AppContext, repo_id: str, keep: int, dry_run: bool, lock_timeout: float,
                       as_json: bool) -> None:
    """Drop all but the newest N versions of a repository, once.

    The same rule as `retain_versions: N` in repos.yaml: the latest version and the
    published one are never dropped. Dropping frees no bytes by itself: `store gc` then
    removes what only the dropped versions held.

    \b
    Example:
      reconciler repo prune-versions synctest --keep 5 && reconciler store gc
    """
    from reconciler.apply import commands
    from reconciler.apply.oneoff import run_command

    result = run_command(app.existing_store, commands.PruneVersions(repo_id, keep, dry_run),
                         lock_timeout=lock_timeout)
    if as_json:
        echo_json(result.to_json())
        return
    kept = f"kept {_versions(result.kept)}"
    if result.protected:
        kept += " (" + "; ".join(f"{n}: {', '.join(why)}" for n, why in sorted(result.protected.items())) + ")"
    if not result.dropped:
        click.echo(f"{repo_id}: nothing to drop; {kept}")
        return
    verb = "would drop" if dry_run else "dropped"
    click.echo(f"{repo_id}: {verb} {_versions(result.dropped)} (frees ~{human_bytes(result.frees_bytes)} once gc "
               f"runs); {kept}")


def _versions(numbers: tuple[int, ...]) -> str:
    return f"{'version' if len(numbers) == 1 else 'versions'} {version_ranges(numbers)}"


@repo_group.command("diff")
@click.argument("repo_id")
@click.argument("old", type=int)
@click.argument("new", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def diff_cmd(app: AppContext, repo_id: str, old: int, new: int | None, as_json: bool) -> None:
    """Show what changed from version OLD to version NEW (default: the latest), tag by tag.

    \b
    Examples:
      reconciler repo diff synctest 3 7
      reconciler repo diff synctest 3 --json
    """
    from reconciler.ops.versiondiff import diff_versions

    store = app.existing_store
    d = diff_versions(store.version_get(repo_id, old), store.version_get(repo_id, new))
    if as_json:
        echo_json(d.to_json())
        return
    click.echo(f"{repo_id}: version {d.old} -> {d.new}")
    for t in d.tags:
        if t.change == "added":
            click.echo(f"  + tag {t.name}\t{t.new}")
        elif t.change == "removed":
            click.echo(f"  - tag {t.name}\t{t.old}")
        else:
            click.echo(f"  ~ tag {t.name}\t{t.old} -> {t.new}")
    added = ", ".join(f"+{n} {k}" for k, n in d.added.items() if n)
    removed = ", ".join(f"-{n} {k}" for k, n in d.removed.items() if n)
    click.echo("  " + ("; ".join(x for x in (added, removed) if x) or "no content changes")
               if not d.empty else "  no changes")


@repo_group.command("create")
@click.argument("repo_id")
@click.option("--feed", help="Upstream registry URL.")
@click.option("--upstream-name", help="Repository name upstream.")
@pass_app
def create_cmd(app: AppContext, repo_id: str, feed: str | None, upstream_name: str | None) -> None:
    """Create an empty repository."""
    if upstream_name is not None:
        check_upstream_name(upstream_name, feed)
    from reconciler.apply import commands
    from reconciler.apply.oneoff import run_command

    repo = run_command(app.creating_store, commands.CreateRepository(repo_id, feed, upstream_name))
    click.echo(f"created repository {repo.id}")


@repo_group.command("delete")
@click.argument("repo_id")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def delete_cmd(app: AppContext, repo_id: str, yes: bool) -> None:
    """Delete a repository and all its versions (content stays until `store gc`)."""
    app.store.repository_get(repo_id)
    if not yes:
        click.confirm(f"delete repository {repo_id} and all its versions?", abort=True)
    from reconciler.apply import commands
    from reconciler.apply.oneoff import run_command

    run_command(app.store, commands.DeleteRepository(repo_id))
    click.echo(f"deleted repository {repo_id}")


def register(cli: click.Group) -> None:
    cli.add_command(repo_group)
