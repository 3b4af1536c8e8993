"""``reconciler validate -f FILE [--json]``: check a desired-state file without touching anything."""

from __future__ import annotations

import click

from reconciler.cli.context import echo_json
from reconciler.desired import Diagnostic, load_desired
from reconciler.errors import ConfigError


@click.command("validate")
@click.option("-f", "--file", "path", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="The desired-state file (repos.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON list (empty when valid).")
def validate_cmd(path: str, as_json: bool) -> None:
    """Check FILE against the schema and the semantic rules; print every problem.

    Exit 0 when the file is valid, 1 otherwise. Each problem prints as
    FILE:LINE:COL: PATH: message. Nothing is read from the store or the network.

    \b
    Example:
      reconciler validate -f repos.yaml
      reconciler validate -f repos.yaml --json
    """
    try:
        state = load_desired(path)
    except ConfigError as exc:
        diagnostics = [d for d in exc.diagnostics if isinstance(d, Diagnostic)]
        if as_json:
            echo_json([d.to_json() for d in diagnostics])
        else:
            for d in diagnostics:
                click.echo(d.render())
            click.echo(f"error: {path}: {len(exc.diagnostics)} problem{'s' if len(exc.diagnostics) != 1 else ''}",
                       err=True)
        raise click.exceptions.Exit(1) from exc
    if as_json:
        echo_json([])
        return
    repos = state.repositories.values()
    uploads = sum(len(r.uploads) for r in repos)
    copies = sum(len(r.copies) for r in repos)
    published = sum(1 for r in repos if r.publish)
    synced = sum(1 for r in repos if r.feed)
    click.echo(f"OK {path}: {_n(len(state.repositories), 'repository', 'repositories')} ({synced} synced, "
               f"{_n(uploads, 'upload')}, {_n(copies, 'copy', 'copies')}, {published} published), "
               f"{_n(len(state.registries), 'registry', 'registries')}; {state.digest[:19]}")


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def register(cli: click.Group) -> None:
    cli.add_command(validate_cmd)
