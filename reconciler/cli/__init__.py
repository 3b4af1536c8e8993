"""The ``reconciler`` command line: thin commands that parse arguments, call one library
function and render the result. Only the project's own errors are caught: they print
``error: ...`` and a hint and exit with the error's code; anything else is a bug and
keeps its traceback."""

from __future__ import annotations

import logging
import sys

import click

from reconciler import __version__
from reconciler.cli.context import AppContext
from reconciler.errors import ReconcilerError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reconciler")
@click.option("--store", "store", metavar="PATH", envvar="RECONCILER_STORE",
              help="Store location (default ./.reconciler; env RECONCILER_STORE).")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.pass_context
def cli(ctx: click.Context, store: str | None, verbose: int, quiet: bool) -> None:
    """Declarative management of container image repositories.

    \b
    Describe repositories in repos.yaml, then:
      reconciler validate -f repos.yaml
      reconciler plan -f repos.yaml
      reconciler apply -f repos.yaml
      reconciler serve
    """
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = AppContext(store_location=store, quiet=quiet)
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    # one module per command group; each defines `register(cli)`
    from reconciler.cli import (
        content_cmds,
        export_cmds,
        plan_cmds,
        publish_cmds,
        repo_cmds,
        serve_cmds,
        store_cmds,
        sync_cmds,
        validate_cmd,
    )

    # publish_cmds adds `repo rollback`, so it comes after repo_cmds
    for module in (store_cmds, repo_cmds, publish_cmds, serve_cmds, content_cmds, validate_cmd, sync_cmds, plan_cmds, export_cmds):
        module.register(cli)


_register()


def main(argv: list[str] | None = None) -> None:
    try:
        # without standalone mode click returns Exit codes instead of exiting
        rc = cli.main(args=argv, prog_name="reconciler", standalone_mode=False)
    except ReconcilerError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(rc if isinstance(rc, int) else 0)
