"""``reconciler watch``, ``reconciler drift`` and ``reconciler graph``: running the tool
as a service, and seeing where the store and repos.yaml part."""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

import click

from reconciler import api, logfmt
from reconciler.cli.context import AppContext, echo_json, pass_app

if TYPE_CHECKING:
    from reconciler.plan.drift import DriftReport
    from reconciler.watch.loop import TickReport


# -- watch -----------------------------------------------------------------------------------

def tick_line(report: TickReport) -> str:
    """The one line a tick writes to the log (text)."""
    o = report.outcome
    stamp = datetime.fromtimestamp(report.started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [f"{stamp} watch: tick {report.number}"]
    if report.commit:
        parts.append(f"commit {report.commit[:12]}")
    if o.apply_result is not None:
        drift = ", ".join(f"{cause} {n}" for cause, n in sorted(o.drift.items())) or "none"
        parts.append(f"{report.result}: {o.actions} actions, apply {o.apply_result} "
                     f"(journal {o.journal_id}, {o.apply_seconds or 0:.1f} s); drift corrected: {drift}")
    elif report.result == "no_changes":
        parts.append(f"no changes (refreshed {o.upstreams} upstreams, {o.tags} tags)")
    else:
        parts.append(report.result)
    if o.waiting:
        parts.append(f"waiting for their upstream: {', '.join(o.waiting)}")
    if report.errors:
        parts.append("errors: " + "; ".join(report.errors))
    retry = f" ({report.failures} failed in a row)" if report.failures else ""
    parts.append(f"next in {report.next_in:.0f} s{retry}")
    return "; ".join(parts)


def _say(message: str, *, level: str = "info", at: float | None = None, **fields: object) -> None:
    """A watch log line on stderr: text, or one JSON object (--log-format json)."""
    if logfmt.current() == "json":
        stamp = datetime.fromtimestamp(time.time() if at is None else at, UTC)
        line = {"time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "level": level,
                "logger": "reconciler.watch", "message": message, **fields}
        click.echo(json.dumps(line, default=str), err=True)
    else:
        click.echo(f"watch: {message}", err=True)


def _render_tick(report: TickReport) -> None:
    if logfmt.current() == "json":
        _say("tick", level="error" if report.result == "failed" else "info", at=report.started, **report.to_json())
    else:
        click.echo(tick_line(report), err=True)


@click.command("watch")
@click.option("-f", "--file", "path", required=True, metavar="FILE",
              help="The desired-state file; with --git, relative to the repository's root.")
@click.option("--git", "git_url", metavar="URL", help="Follow this git repository (any URL git accepts).")
@click.option("--ref", metavar="BRANCH", help="The branch to follow [default: the repository's default branch].")
@click.option("--interval", type=click.FloatRange(1, 86400), default=60.0, show_default=True, metavar="SECONDS",
              help="Seconds between ticks.")
@click.option("--jitter", type=click.FloatRange(0, 86400), default=0.0, show_default=True, metavar="SECONDS",
              help="Up to this many random seconds added to each wait (replicas do not tick in step).")
@click.option("--max-backoff", type=click.FloatRange(1, 86400), default=900.0, show_default=True,
              metavar="SECONDS", help="Longest wait after failures (the wait doubles per failure in a row).")
@click.option("--lock-timeout", type=click.FloatRange(0), default=300.0, show_default=True, metavar="SECONDS",
              help="Seconds an apply waits for the store lock (held by a manual apply) before the tick fails.")
@click.option("--git-timeout", type=click.FloatRange(1), default=120.0, show_default=True, metavar="SECONDS",
              help="Seconds one git command may take.")
@click.option("--checkout-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Where to keep the clone [default: a folder inside a directory store].")
@click.option("--metrics-port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Serve /metrics, /healthz and /readyz on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port.")
@pass_app
def watch_cmd(app: AppContext, path: str, git_url: str | None, ref: str | None, interval: float, jitter: float,
              max_backoff: float, lock_timeout: float, git_timeout: float, checkout_dir: str | None,
              metrics_port: int | None, metrics_host: str) -> None:
    """Reconcile continuously: plan every interval, apply when anything changed.

    With --git, the repository is cloned (by the git command) and fetched every tick;
    the commit applied is recorded in the journal and in each version it makes. A tick
    applies when the commit, an upstream or the store (a change by hand) differs from
    repos.yaml. Failures (an upstream or git outage, the lock held too long) double the
    wait up to --max-backoff; a repository whose upstream is down waits while the others
    are applied. One log line per tick (--log-format json for log collectors).

    SIGTERM or Ctrl-C stops after the current apply; a second one abandons it
    (journaled interrupted; the next apply converges). Exit 0 either way.

    \b
    Examples:
      reconciler watch -f repos.yaml --interval 300
      reconciler watch --git https://git.example.com/platform/images.git --ref main \\
          -f repos.yaml --interval 60 --jitter 10 --metrics-port 9102
    """
    from reconciler.watch.loop import StopFlag
    from reconciler.watch.run import run_watch

    stop = StopFlag()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.requests == 0:
            _say(f"{signal.Signals(signum).name}: stopping after the current apply "
                 "(send it again to abandon the apply)")
        stop.request()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def on_listen(port: int) -> None:
        _say(f"/metrics, /healthz and /readyz on http://{metrics_host}:{port}", port=port)

    try:
        run_watch(app.creating_store, path, git_url=git_url, ref=ref, checkout_dir=checkout_dir, interval=interval,
                  jitter=jitter, max_backoff=max_backoff, lock_timeout=lock_timeout, git_timeout=git_timeout,
                  metrics_port=metrics_port, metrics_host=metrics_host, stop=stop, on_tick=_render_tick,
                  on_listen=on_listen)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    _say("stopped")


# -- drift -----------------------------------------------------------------------------------

_CAUSE_TEXT = {
    "upstream": "tags that moved, appeared or vanished upstream",
    "manual": "changes made by one-off commands since the last apply (apply undoes them)",
    "desired": "repos.yaml changed since the last apply, or was not fully applied",
    "store": "content the store lists that is missing or corrupt",
}


def render_drift(report: DriftReport) -> str:
    last = report.last_apply
    lines = [f"Drift between the store and {report.desired_path} ("
             + (f"last apply: journal {last.entry_id}, {last.result}" if last.entry_id else "never applied") + ")",
             ""]
    for cause, items in report.by_cause().items():
        lines.append(f"{cause} ({len(items)}): {_CAUSE_TEXT[cause]}")
        for item in items:
            lines.append(f"  {item.repo or '(store)'}: {item.what}")
            lines.append(f"      why: {item.why}")
        lines.append("")
    counts = report.counts()
    lines.append("Drift: " + ", ".join(f"{n} {c}" for c, n in counts.items()) + ".")
    if counts["upstream"] or counts["manual"] or counts["desired"]:
        lines.append(f"`reconciler apply -f {report.desired_path}` corrects upstream, manual and desired drift.")
    if counts["store"]:
        lines.append("Store problems: see `reconciler store check`; re-sync or re-upload the content named.")
    if not report.has_drift:
        lines = [f"No drift: the store matches {report.desired_path}."]
    return "\n".join(lines) + "\n"


@click.command("drift")
@click.option("-f", "--file", "path", required=True, metavar="FILE", help="The desired-state file (repos.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there is no drift, 2 when there is.")
@click.option("--verify-content", is_flag=True, help="Re-hash every stored file (slow) to find corrupt content.")
@click.option("--prune-repositories", is_flag=True, help="Count repositories repos.yaml does not declare as drift.")
@pass_app
def drift_cmd(app: AppContext, path: str, as_json: bool, detailed_exitcode: bool, verify_content: bool,
              prune_repositories: bool) -> None:
    """Show what differs between the store and repos.yaml, grouped by cause.

    upstream: a synced tag moved or vanished upstream. manual: a tag, copy, removal,
    publish or rollback made by a one-off command since the last apply. desired:
    repos.yaml changed since the last apply. store: content missing or corrupt (a quick
    check; --verify-content re-hashes every file). Writes nothing; a store that does not
    exist yet is compared as an empty one (and it says so), never created.

    Exit codes: 0 (with --detailed-exitcode: no drift), 1 error (also when an upstream
    could not be refreshed), 2 drift (with --detailed-exitcode).

    \b
    Examples:
      reconciler drift -f repos.yaml
      reconciler drift -f repos.yaml --json --detailed-exitcode
    """
    with app.store_or_empty("comparing") as store:  # drift writes nothing, and creates no store
        report = api.drift_report(store, path, verify_content=verify_content, prune_repositories=prune_repositories)
    if as_json:
        echo_json(report.to_json())
    else:
        click.echo(render_drift(report), nl=False)
    if report.errors:
        for e in report.errors:
            click.echo(f"error: {e}", err=True)
        raise click.exceptions.Exit(1)
    if detailed_exitcode and report.has_drift:
        raise click.exceptions.Exit(2)


# -- graph -----------------------------------------------------------------------------------

@click.command("graph")
@click.option("-f", "--file", "path", required=True, metavar="FILE", help="The desired-state file (repos.yaml).")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True,
              help="Mermaid (GitHub and GitLab draw it in Markdown) or Graphviz DOT (`dot -Tsvg`).")
def graph_cmd(path: str, fmt: str) -> None:
    """Print the flow repos.yaml declares: upstream feeds and upload files ->
    repositories -> copies and pins -> publish names. Reads no store, no network.

    \b
    Examples:
      reconciler graph -f repos.yaml > flow.mmd
      reconciler graph -f repos.yaml --format dot | dot -Tsvg > flow.svg
    """
    from reconciler.desired.loader import load_desired
    from reconciler.plan.flowgraph import dot, from_desired, mermaid

    flow = from_desired(load_desired(path))
    sys.stdout.write(mermaid(flow) if fmt == "mermaid" else dot(flow))


def register(cli: click.Group) -> None:
    for command in (watch_cmd, drift_cmd, graph_cmd):
        cli.add_command(command)
