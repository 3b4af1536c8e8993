"""``reconciler plan``, ``reconciler apply`` and ``reconciler history``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import api
from reconciler.cli.context import AppContext, echo_json, pass_app
from reconciler.errors import InvalidInput
from reconciler.plan.model import Op, Plan
from reconciler.plan.render_text import render_text

if TYPE_CHECKING:
    # apply's modules are imported by the apply command only: `plan` (the no-change
    # refresh a CI job runs on every push) does not pay for them at start-up
    from reconciler.apply.runner import ApplyResult


def use_color() -> bool:
    """Colour only on a terminal, and never with NO_COLOR (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@click.command("plan")
@click.option("-f", "--file", "path", required=True, metavar="FILE", help="The desired-state file (repos.yaml).")
@click.option("--out", "out", metavar="PLAN", help="Save the plan to this file for `reconciler apply PLAN`.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (docs/plan-json.md).")
@click.option("--markdown", is_flag=True, help="Print Markdown for a pull-request comment.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are.")
@click.option("--no-refresh", is_flag=True, help="Do not ask the upstreams (sync changes are not shown).")
@click.option("--target", "targets", multiple=True, metavar="REPO",
              help="Plan only this repository (and those it copies from); repeatable.")
@click.option("--prune-repositories", is_flag=True, help="Plan removing repositories that repos.yaml does not declare.")
@pass_app
def plan_cmd(app: AppContext, path: str, out: str | None, as_json: bool, markdown: bool, detailed_exitcode: bool,
             no_refresh: bool, targets: tuple[str, ...], prune_repositories: bool) -> None:
    """Show what apply would change: refresh the store and the upstreams, then diff.

    Writes nothing to the store. Exit codes: 0 success (with --detailed-exitcode: no
    changes), 1 error (also when an upstream or one of its tags could not be refreshed:
    everything else is still planned and shown), 2 changes pending (with
    --detailed-exitcode).

    \b
    Examples:
      reconciler plan -f repos.yaml
      reconciler plan -f repos.yaml --out plan.json && reconciler apply plan.json
      reconciler plan -f repos.yaml --markdown > comment.md
    """
    if as_json and markdown:
        raise click.UsageError("--json and --markdown are exclusive")
    from reconciler.cli.refresh_progress import RefreshProgress

    refreshing = None if app.quiet else RefreshProgress(tty=sys.stderr.isatty())
    try:
        plan = api.make_plan(app.store, path, targets=targets, refresh=not no_refresh,
                             prune_repositories=prune_repositories, progress=refreshing)
    finally:
        if refreshing is not None:
            refreshing.close()
    if out:
        Path(out).write_text(plan.dumps())
    if as_json:
        from reconciler.plan.render_json import render_json

        click.echo(render_json(plan), nl=False)
    elif markdown:
        from reconciler.plan.render_markdown import render_markdown

        click.echo(render_markdown(plan), nl=False)
    else:
        click.echo(render_text(plan, color=use_color()), nl=False)
        if out:
            click.echo(f"\nSaved the plan to {out}. Apply exactly these actions with:\n  reconciler apply {out}")
    if plan.errors or plan.failed_tags:  # some repository or tag could not be planned: shown above, and an error
        for e in plan.errors:
            click.echo(f"error: {e}", err=True)
        for f in plan.failed_tags:
            click.echo(f"error: {f.repo}: tag {f.tag}: {f.error}", err=True)
        raise click.exceptions.Exit(1)
    if detailed_exitcode and plan.has_changes:
        raise click.exceptions.Exit(2)


def _report(plan: Plan, result: ApplyResult, as_json: bool) -> None:
    from reconciler.apply.runner import FAILED, NOT_STARTED, SKIPPED

    if as_json:
        echo_json({"plan": plan.to_json(), "result": result.to_json()})
    else:
        click.echo(render_text(plan, color=use_color()), nl=False)
        click.echo("")
        for r in result.results:
            # actions an interrupted apply never started are counted below, not listed
            if r.status in (FAILED, SKIPPED) and not (result.stopped and r.error == NOT_STARTED):
                click.echo(f"{r.status}: {r.id}: {r.error}", err=True)
        versions = ", ".join(f"{repo} version {n}" for repo, n in sorted(result.versions.items()))
        published = ", ".join(f"{repo}@{n}" for repo, n in sorted(result.published.items()))
        done = len(result.status("done"))
        verdict = "INTERRUPTED" if result.stopped else ("complete" if result.ok else "FAILED")
        click.echo(f"Apply {verdict}: {done} done, {len(result.status(FAILED))} "
                   f"failed, {len(result.status(SKIPPED))} skipped (journal entry {result.journal_id}).")
        if result.stopped:
            click.echo(f"Stopped: {result.stopped}", err=True)
        if versions:
            click.echo(f"New versions: {versions}.")
        if published:
            click.echo(f"Published: {published}.")
        dropped_ids = {r.id for r in result.status("done")}
        drops = [a for a in plan.actions if a.op is Op.DROP_VERSIONS and a.id in dropped_ids]
        if drops:
            from reconciler.store.protocol import version_ranges

            dropped = ", ".join(f"{a.repo} {version_ranges(a.versions)}" for a in drops)
            click.echo(f"Dropped versions: {dropped} (`reconciler store gc` frees their bytes).")
    if not result.ok:
        raise click.exceptions.Exit(1)


@click.command("apply")
@click.argument("plan_file", required=False, metavar="[PLAN]")
@click.option("-f", "--file", "path", metavar="FILE", help="Plan and apply this desired-state file in one go.")
@click.option("--target", "targets", multiple=True, metavar="REPO", help="Only this repository (and its sources).")
@click.option("--lock-timeout", default=60.0, show_default=True, help="Seconds to wait for the store lock.")
@click.option("--prune-repositories", is_flag=True, help="Also delete repositories repos.yaml does not declare.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and the result as JSON.")
@pass_app
def apply_cmd(app: AppContext, plan_file: str | None, path: str | None, targets: tuple[str, ...],
              lock_timeout: float, prune_repositories: bool, as_json: bool) -> None:
    """Make the store match repos.yaml, or apply a saved plan exactly as reviewed.

    A saved plan is refused when the store or the desired file changed since it was
    made. A failed action stops what depends on it; independent actions still run;
    the exit code is then 1. Safe to re-run after a crash: it converges.

    \b
    Examples:
      reconciler apply -f repos.yaml
      reconciler apply plan.json
    """
    if (plan_file is None) == (path is None):
        raise click.UsageError("give either a saved PLAN or -f FILE")
    from reconciler.cli.apply_progress import ApplyProgress

    progress = None if app.quiet else ApplyProgress(tty=sys.stderr.isatty())
    try:
        if plan_file is not None:
            if targets or prune_repositories:
                raise click.UsageError("--target and --prune-repositories belong to the plan, not to `apply PLAN`")
            plan, result = api.apply_saved_plan(app.store, plan_file, lock_timeout=lock_timeout, progress=progress)
        else:
            assert path is not None
            from reconciler.cli.refresh_progress import RefreshProgress

            refreshing = None if app.quiet else RefreshProgress(tty=sys.stderr.isatty())
            try:
                plan, result = api.apply_file(app.store, path, targets=targets, lock_timeout=lock_timeout,
                                              prune_repositories=prune_repositories, progress=progress,
                                              refresh_progress=refreshing)
            finally:
                if refreshing is not None:
                    refreshing.close()
    finally:
        if progress is not None:
            progress.close()
    _report(plan, result, as_json)


@click.command("history")
@click.option("--limit", default=20, show_default=True, help="How many entries.")
@click.option("--prune-before", metavar="DATE",
              help="Delete the entries started before DATE (YYYY-MM-DD or ISO 8601 time, UTC unless "
                   "given); running ones stay.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def history_cmd(app: AppContext, limit: int, prune_before: str | None, as_json: bool) -> None:
    """Show the apply journal: who applied what, when, and how it ended.

    The journal keeps every apply until it is pruned with --prune-before.

    \b
    Examples:
      reconciler history --limit 5
      reconciler history --prune-before 2024-01-01
    """
    if prune_before is not None:
        cutoff = _utc_cutoff(prune_before)
        removed = app.existing_store.journal_prune(cutoff)
        if as_json:
            echo_json({"before": cutoff, "entries_removed": removed})
        else:
            click.echo(f"removed {removed} journal {'entry' if removed == 1 else 'entries'} started before {cutoff}")
        return
    entries = app.store.journal_list(limit)
    if as_json:
        echo_json([{"id": e.id, "started": e.started, "finished": e.finished, "user": e.user, "host": e.host,
                    "command": e.command, "plan_digest": e.plan_digest, "result": e.result,
                    "details": dict(e.details)} for e in entries])
        return
    if not entries:
        click.echo("no applies yet")
        return
    for e in entries:
        digest = (e.plan_digest or "")[:19]
        click.echo(f"{e.id}\t{e.started}\t{e.user}@{e.host}\t{e.result}\t{digest}\t{e.command}")


def _utc_cutoff(text: str) -> str:
    """``--prune-before``: ``YYYY-MM-DD`` or an ISO 8601 time (UTC unless it says
    otherwise), as the journal writes times (UTC ISO 8601, seconds)."""
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"--prune-before {text!r}: not a date or time ({exc})",
                           hint="give YYYY-MM-DD or an ISO 8601 time such as 2024-05-01T12:00:00+02:00") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


def register(cli: click.Group) -> None:
    for command in (plan_cmd, apply_cmd, history_cmd):
        cli.add_command(command)
