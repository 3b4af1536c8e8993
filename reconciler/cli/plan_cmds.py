"""``reconciler plan``, ``reconciler apply`` and ``reconciler history``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler import api
from reconciler.cli.context import AppContext, echo_json, pass_app
from reconciler.errors import ConfigError, InvalidInput, ReconcilerError
from reconciler.plan.actions import DropVersions
from reconciler.plan.model import FORMAT_VERSION, Plan
from reconciler.plan.render_text import incomplete_text, render_text
from reconciler.plan.seal import key_from_env

if TYPE_CHECKING:
    # apply's modules are imported by the apply command only: `plan` (the no-change
    # refresh a CI job runs on every push) does not pay for them at start-up
    from reconciler.apply.result import ApplyResult


def use_color() -> bool:
    """Colour only on a terminal, and never with NO_COLOR (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@click.command("plan")
@click.option("-f", "--file", "path", required=True, metavar="FILE", help="The desired-state file (repos.yaml).")
@click.option("--out", "out", metavar="PLAN",
              help="Save the plan to this file for `reconciler apply PLAN` (with its digest; signed when "
                   "RECONCILER_PLAN_KEY is set).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the plan as JSON (docs/plan-json.md); on an error, a JSON error document.")
@click.option("--markdown", is_flag=True, help="Print Markdown for a pull-request comment (at most 60,000 characters).")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are.")
@click.option("--no-refresh", is_flag=True, help="Do not ask the upstreams (sync changes are not shown).")
@click.option("--target", "targets", multiple=True, metavar="REPO",
              help="Plan only this repository (and those it copies from or hands a publish name to); repeatable.")
@click.option("--prune-repositories", is_flag=True, help="Plan removing repositories that repos.yaml does not declare.")
@pass_app
def plan_cmd(app: AppContext, path: str, out: str | None, as_json: bool, markdown: bool, detailed_exitcode: bool,
             no_refresh: bool, targets: tuple[str, ...], prune_repositories: bool) -> None:
    """Show what apply would change: refresh the store and the upstreams, then diff.

    Writes nothing to the store, and creates none: a store that does not exist yet is
    planned as an empty one (and says so). Exit codes: 0 success (with
    --detailed-exitcode: no changes), 1 error (also when the plan is incomplete: an
    upstream or one of its tags could not be refreshed, or repos.yaml asks for something
    impossible; the rest is still planned and shown), 2 changes pending (with
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
        plan = _make_plan(app, path, targets=targets, refresh=not no_refresh, prune_repositories=prune_repositories,
                          progress=refreshing)
    except ReconcilerError as exc:
        if as_json:  # CI steps reading stdout with jq get a document, not nothing
            echo_json(error_document(exc))
        raise
    finally:
        if refreshing is not None:
            refreshing.close()
    key = key_from_env()
    if out:
        Path(out).write_text(plan.dumps(key))
    if as_json:
        click.echo(plan.dumps(key), nl=False)
    elif markdown:
        from reconciler.plan.render_markdown import render_markdown

        click.echo(render_markdown(plan, full_plan=out), nl=False)
    else:
        click.echo(render_text(plan, color=use_color()), nl=False)
        if out:
            click.echo(f"\nSaved the plan to {out}. Apply exactly these actions with:\n  reconciler apply {out}")
    if plan.errors or plan.failed_tags:  # shown in the plan above; stderr says why the exit code is 1
        if as_json or markdown:
            for e in plan.errors:
                click.echo(f"error: {e}", err=True)
        for f in plan.failed_tags:
            click.echo(f"error: {f.repo}: tag {f.tag}: {f.error}", err=True)
        if plan.errors:
            click.echo(f"error: plan incomplete: {incomplete_text(plan)}", err=True)
        raise click.exceptions.Exit(1)
    if detailed_exitcode and plan.has_changes:
        raise click.exceptions.Exit(2)


def _make_plan(app: AppContext, path: str, **kw: Any) -> Plan:
    with app.store_or_empty("planning") as store:
        return api.make_plan(store, path, **kw)


def error_document(exc: ReconcilerError) -> dict[str, Any]:
    """What ``plan --json`` prints on stdout when there is no plan to print."""
    from reconciler.desired import Diagnostic

    errors: list[dict[str, Any]] = []
    if isinstance(exc, ConfigError):
        errors = [{"message": d.message, "where": f"{d.file}:{d.line}:{d.column}", "path": d.path, "kind": "config"}
                  for d in exc.diagnostics if isinstance(d, Diagnostic)]
    if not errors:
        errors = [{"message": exc.message, "kind": "error", **({"hint": exc.hint} if exc.hint else {})}]
    return {"format_version": FORMAT_VERSION, "errors": errors}


def _print_plan(plan: Plan, saved: str | None) -> None:
    """The plan, before anything is applied (as `terraform apply` shows it first)."""
    if saved is not None:
        click.echo(f"Applying the saved plan {saved} (made {plan.created or 'at an unknown time'}, "
                   f"{plan.digest()[:19]})")
    click.echo(render_text(plan, color=use_color(), refresh_line=saved is None), nl=False)
    click.echo("")
    sys.stdout.flush()


def _report(plan: Plan, result: ApplyResult, as_json: bool) -> None:
    from reconciler.apply.result import FAILED, NOT_STARTED, SKIPPED

    if as_json:
        echo_json({"plan": plan.to_json(), "result": result.to_json()})
    else:
        for r in result.results:
            # actions an interrupted apply never started are counted below, not listed
            if r.status in (FAILED, SKIPPED) and not (result.stopped and r.error == NOT_STARTED):
                click.echo(f"{r.status}: {r.id}: {r.error}", err=True)
        versions = ", ".join(f"{repo} version {n}" for repo, n in sorted(result.versions.items()))
        switched = ", ".join(f"{p['name']} -> {p['repo']}@{p['version']}" if p["repo"] else f"{p['name']} unpublished"
                             for p in result.publications)
        done = len(result.status("done"))
        verdict = "INTERRUPTED" if result.stopped else ("complete" if result.ok else "FAILED")
        click.echo(f"Apply {verdict}: {done} done, {len(result.status(FAILED))} "
                   f"failed, {len(result.status(SKIPPED))} skipped (journal entry {result.journal_id}).")
        if result.stopped:
            click.echo(f"Stopped: {result.stopped}; what was not applied is applied by the next apply.", err=True)
        if versions:
            click.echo(f"New versions: {versions}.")
        if switched:
            click.echo(f"Published: {switched}.")
        dropped_ids = {r.id for r in result.status("done")}
        drops = [a for a in plan.actions if isinstance(a, DropVersions) and a.id in dropped_ids]
        if drops:
            from reconciler.model.repository import version_ranges

            dropped = ", ".join(f"{a.repo} {version_ranges(a.versions)}" for a in drops)
            click.echo(f"Dropped versions: {dropped} (`reconciler store gc` frees their bytes).")
    if result.stopped:
        from reconciler.cli.interrupts import exit_now

        exit_now(result.exit_code)  # abandoned downloads must not delay the exit
    if not result.ok:
        raise click.exceptions.Exit(1)


@click.command("apply")
@click.argument("plan_file", required=False, metavar="[PLAN]")
@click.option("-f", "--file", "path", metavar="FILE", help="Plan and apply this desired-state file in one go.")
@click.option("--target", "targets", multiple=True, metavar="REPO", help="Only this repository (and its sources).")
@click.option("--lock-timeout", default=60.0, show_default=True, help="Seconds to wait for the store lock.")
@click.option("--prune-repositories", is_flag=True, help="Also delete repositories repos.yaml does not declare.")
@click.option("--skip-unavailable", is_flag=True,
              help="Apply what does not depend on an upstream that could not be refreshed (default: refuse the "
                   "plan); the journal says partial and the exit code is 1.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and the result as JSON.")
@pass_app
def apply_cmd(app: AppContext, plan_file: str | None, path: str | None, targets: tuple[str, ...],
              lock_timeout: float, prune_repositories: bool, skip_unavailable: bool, as_json: bool) -> None:
    """Make the store match repos.yaml, or apply a saved plan exactly as reviewed.

    Prints the plan first, then progress, then a summary. A saved plan is refused when
    it was edited (its digest, and its HMAC when RECONCILER_PLAN_KEY is set) or when the
    store or the desired file changed since it was made. A failed action stops what
    depends on it; independent actions still run; the exit code is then 1. Ctrl-C or
    SIGTERM stops it before the next download or write (exit 130 / 143, journaled
    interrupted); a second Ctrl-C exits at once. Safe to re-run after a crash: it
    converges.

    \b
    Examples:
      reconciler apply -f repos.yaml
      reconciler apply plan.json
    """
    if (plan_file is None) == (path is None):
        raise click.UsageError("give either a saved PLAN or -f FILE")
    if plan_file is not None and (targets or prune_repositories):
        raise click.UsageError("--target and --prune-repositories belong to the plan, not to `apply PLAN`")
    from reconciler.cli.interrupts import stop_on_signals
    from reconciler.cli.progress import ProgressRenderer
    from reconciler.cli.refresh_progress import RefreshProgress
    from reconciler.ops.stop import StopToken

    progress = None if app.quiet else ProgressRenderer(tty=sys.stderr.isatty())
    refreshing = None if app.quiet or plan_file is not None else RefreshProgress(tty=sys.stderr.isatty())
    stop = StopToken()

    def show(plan: Plan) -> None:
        if refreshing is not None:
            refreshing.close()  # the refresh's status line ends before the plan is printed
        if not as_json:
            _print_plan(plan, plan_file)

    store = app.creating_store
    try:
        with stop_on_signals(stop):
            if plan_file is not None:
                plan, result = api.apply_saved_plan(store, plan_file, lock_timeout=lock_timeout, progress=progress,
                                                    stop=stop, skip_unavailable=skip_unavailable, on_plan=show)
            else:
                assert path is not None
                plan, result = api.apply_file(store, path, targets=targets, lock_timeout=lock_timeout,
                                              prune_repositories=prune_repositories, progress=progress,
                                              refresh_progress=refreshing, stop=stop,
                                              skip_unavailable=skip_unavailable, on_plan=show)
    finally:
        for shown in (refreshing, progress):
            if shown is not None:
                shown.close()
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
        digest = (e.plan_digest or "-")[:19]
        summary = e.details.get("summary", "")
        click.echo(f"{e.id}\t{e.started}\t{e.user}@{e.host}\t{e.result}\t{digest}\t{e.command}"
                   + (f"\t{summary}" if summary else ""))


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
