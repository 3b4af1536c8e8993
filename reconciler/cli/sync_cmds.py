"""``reconciler sync``: sync one repository from an upstream registry, with progress
(a bar on a terminal, plain lines otherwise, on stderr) and a summary."""

from __future__ import annotations

import sys

import click

from reconciler import api
from reconciler.cli.content_cmds import render
from reconciler.cli.context import AppContext, echo_json, human_bytes, pass_app
from reconciler.cli.progress import ProgressRenderer
from reconciler.model.platforms import PlatformFilter
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.sync import SyncResult


def _names(names: tuple[str, ...], limit: int = 8) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
    return f" ({shown})"


def render_summary(result: SyncResult) -> None:
    if result.version is None:
        click.echo(f"{result.repo_id}: no changes (upstream {result.upstream_name}, {result.tags_selected} tags)")
    else:
        click.echo(f"{result.repo_id}: new version {result.version} (upstream {result.upstream_name})")
    if result.selection:
        click.echo(f"  {result.selection}")
    click.echo(f"  tags: {len(result.tags_added)} added{_names(result.tags_added)}, "
               f"{len(result.tags_moved)} moved{_names(result.tags_moved)}, "
               f"{len(result.tags_removed)} removed{_names(result.tags_removed)}")
    if result.tags_dropped:
        click.echo(f"  skipped (deleted upstream during the sync):{_names(result.tags_dropped)}")
    if result.tags_failed:
        click.echo(f"  failed: {', '.join(result.tags_failed)} (each keeps what it pointed at; see below)")
    click.echo(f"  downloaded: {result.manifests_added} manifests, {result.blobs_added} blobs, "
               f"{human_bytes(result.bytes_downloaded)}")
    if result.foreign_layers:
        click.echo(f"  foreign layers recorded, not downloaded: {result.foreign_layers}")
    if result.children_skipped:
        click.echo(f"  index entries of platforms not mirrored, left out: {result.children_skipped}")
    if result.content_added or result.content_removed:
        added = ", ".join(f"{n} {k}" for k, n in result.content_added.items() if n and k != "tags") or "nothing"
        removed = ", ".join(f"{n} {k}" for k, n in result.content_removed.items() if n and k != "tags") or "nothing"
        click.echo(f"  repository: added {added}; removed {removed}")
    click.echo(f"  requests: {result.requests}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


def report_failed_tags(result: SyncResult) -> None:
    """One ``error:`` line per tag that could not be synced; then exit 1 (the other tags
    were synced and committed)."""
    if not result.tags_failed:
        return
    for tag, why in result.tags_failed.items():
        click.echo(f"error: tag {tag}: {why}", err=True)
    click.echo(f"hint: {len(result.tags_failed)} of {len(result.tags_failed) + result.tags_selected} tags failed and "
               "kept what they pointed at; the others were synced. Fix the cause and sync again.", err=True)
    raise click.exceptions.Exit(1)


@click.command("sync")
@click.argument("repo_id")
@click.option("--feed", metavar="URL", help="Upstream registry URL (default: the repository's feed).")
@click.option("--upstream-name", metavar="NAME", help="Repository name upstream (default: the repository's).")
@click.option("--include", multiple=True, metavar="GLOB", help="Sync only matching tags (repeatable; 're:' = regex).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip matching tags (repeatable; 're:' = regex).")
@click.option("--semver", "semver", metavar="RANGE",
              help="Sync only tags that are versions in this npm-style range ('>=1.2.0 <2.0.0', '^1.2', '~1.2', '1.x').")
@click.option("--semver-suffix", metavar="GLOB", help="Version tags carry this variant suffix ('alpine': 1.2.3-alpine).")
@click.option("--prereleases", is_flag=True, help="Also select prerelease versions (2.1.0-rc1) with --semver/--latest.")
@click.option("--latest", type=int, metavar="N", help="Keep only the N highest versions left after the other filters.")
@click.option("--sort", type=click.Choice(["semver", "alphanumeric"]), default=None,
              help="How --latest ranks tags (default semver; alphanumeric for date stamps).")
@click.option("--platform", "platforms", multiple=True, metavar="OS/ARCH[/VARIANT]",
              help="Sync only this platform of multi-platform images (repeatable); the index is kept byte for byte.")
@click.option("--mirror", is_flag=True, help="Also remove synced tags that vanished upstream (within the filter).")
@click.option("--allow-empty", is_flag=True,
              help="Accept an upstream that lists no tags: create the repository empty, and with --mirror "
                   "remove every synced tag.")
@click.option("--jobs", type=click.IntRange(1, 64), default=16, show_default=True, help="Parallel downloads.")
@click.option("--v1", "v1", is_flag=True,
              help="Sync Docker v1 images and v1 tags from the feed's v1 API instead (repos.yaml: enable_v1).")
@click.option("--username-env", metavar="VAR", help="Environment variable holding the registry user name.")
@click.option("--password-env", metavar="VAR", help="Environment variable holding the registry password/token.")
@click.option("--auth-file", type=click.Path(dir_okay=False), help="A docker/podman auth.json with credentials.")
@click.option("--tls-verify/--no-tls-verify", default=True, show_default=True, help="Verify TLS certificates.")
@click.option("--ca-file", type=click.Path(dir_okay=False), help="CA bundle for the registry's certificate.")
@click.option("--timeout", type=click.FloatRange(0, 3600, min_open=True), default=60.0, show_default=True,
              help="Seconds a response may stall before the attempt fails (and is retried).")
@click.option("--retries", type=click.IntRange(0, 20), default=4, show_default=True,
              help="Retries of a temporary failure (reset, stall, 408/429/5xx).")
@click.option("--lock-timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the store lock.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def sync_cmd(app: AppContext, repo_id: str, feed: str | None, upstream_name: str | None,
             include: tuple[str, ...], exclude: tuple[str, ...], semver: str | None, semver_suffix: str | None,
             prereleases: bool, latest: int | None, sort: str | None, platforms: tuple[str, ...],
             mirror: bool, allow_empty: bool, jobs: int, v1: bool,
             username_env: str | None, password_env: str | None, auth_file: str | None, tls_verify: bool,
             ca_file: str | None, timeout: float, retries: int, lock_timeout: float, as_json: bool) -> None:
    """Sync REPO_ID from an upstream registry (creating the repository if needed).

    Lists the upstream tags, selects them with --include/--exclude, then --semver, then
    --latest, resolves each with a HEAD, downloads only the manifests and blobs the store
    does not already hold (with --platform, only those platforms' of an index), verifies
    every digest, and commits one new repository version (none when nothing changed).
    Additive unless --mirror; a mirror whose upstream selects no tag removes nothing
    unless --allow-empty (an outage or lost credentials must not wipe a mirror), and a
    new repository whose upstream lists no tags is not created unless --allow-empty. A
    tag that cannot be synced keeps what it pointed at; the others are synced; exit 1.

    It is the repos.yaml entry {feed, upstream_name, tags, platforms, mirror,
    allow_empty} for REPO_ID alone, planned and applied as `apply --target` does, so it
    leaves what that entry leaves (--mirror moves a tag the upstream has whoever set it,
    and drops what only its old target needed). docs/architecture.md, "One way in".

    \b
    Examples:
      reconciler sync synctest --feed https://registry-1.docker.io --upstream-name busybox \\
          --include 'latest' --include '1.36*' --exclude '*-uclibc'
      reconciler sync synctest            # again, with the stored feed and upstream name
      reconciler sync synctest --mirror --json
      reconciler sync nginx --semver '^1.26' --semver-suffix alpine --latest 3 --mirror
      reconciler sync alpine --platform linux/amd64 --platform linux/arm64/v8
      reconciler sync busybox-v1 --v1 --feed https://crane.example.com --upstream-name busybox
    """
    if v1:
        if include or exclude or mirror or allow_empty or semver or latest or platforms:
            raise click.UsageError("--v1 syncs every upstream v1 tag, additively: no --include/--exclude/--semver/"
                                   "--latest/--platform/--mirror")
        v1_result = api.sync_v1_repository(
            app.creating_store, repo_id, feed=feed, upstream_name=upstream_name, username_env=username_env,
            password_env=password_env, auth_file=auth_file, tls_verify=tls_verify, ca_file=ca_file,
            timeout=timeout, retries=retries, lock_timeout=lock_timeout)
        render(v1_result, as_json)
        return
    if (semver_suffix or prereleases) and not (semver or (latest and sort != "alphanumeric")):
        raise click.UsageError("--semver-suffix and --prereleases need --semver, or --latest ranked by semver")
    if sort and latest is None:
        raise click.UsageError("--sort ranks the tags --latest keeps: give --latest N")
    tag_filter = TagFilter(include=include, exclude=exclude, semver=semver, semver_suffix=semver_suffix,
                           prereleases=prereleases, latest=latest, sort=sort or "semver")
    platform_filter = PlatformFilter.parse(platforms) if platforms else None
    renderer = None if app.quiet else ProgressRenderer(tty=sys.stderr.isatty(), phases=True)
    try:
        result = api.sync_repository(
            app.creating_store, repo_id, feed=feed, upstream_name=upstream_name, platforms=platform_filter,
            tag_filter=tag_filter, mirror=mirror, allow_empty=allow_empty, jobs=jobs,
            username_env=username_env, password_env=password_env, auth_file=auth_file,
            tls_verify=tls_verify, ca_file=ca_file, timeout=timeout, retries=retries,
            progress=renderer.for_repository(repo_id) if renderer else None,
            lock_timeout=lock_timeout)
    finally:
        if renderer is not None:
            renderer.close()
    if as_json:
        echo_json(result.to_json())
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
    else:
        render_summary(result)
    report_failed_tags(result)


def register(cli: click.Group) -> None:
    cli.add_command(sync_cmd)
