"""The ``reconciler`` command line: thin commands that parse arguments, call one library
function and render the result. Only the project's own errors are caught: they print
``error: ...`` and a hint and exit with the error's code; anything else is a bug and
keeps its traceback."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from reconciler import __version__, logfmt
from reconciler.cli.context import AppContext
from reconciler.errors import Interrupted, ReconcilerError

#: command name -> the modules whose ``register(cli)`` adds it (in that order). Modules are
#: imported only when their command runs, so ``reconciler plan`` does not pay for gunicorn
#: and ``reconciler repo list`` does not pay for jsonschema.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "store": ("store_cmds",),
    "repo": ("repo_cmds", "publish_cmds"),  # publish_cmds adds `repo rollback`
    "publish": ("repo_cmds", "publish_cmds"),
    "unpublish": ("repo_cmds", "publish_cmds"),
    "serve": ("serve_cmds",),
    "upload": ("content_cmds",),
    "tag": ("content_cmds",),
    "copy": ("content_cmds",),
    "remove": ("content_cmds",),
    "validate": ("validate_cmd",),
    "verify": ("verify_cmd",),
    "sync": ("sync_cmds",),
    "plan": ("plan_cmds",),
    "apply": ("plan_cmds",),
    "history": ("plan_cmds",),
    "export": ("export_cmds",),
    "watch": ("operate_cmds",),
    "drift": ("operate_cmds",),
    "graph": ("operate_cmds",),
    "bundle": ("export_cmds",),
}


class LazyGroup(click.Group):
    """A group whose subcommands are registered on first use (see ``COMMAND_MODULES``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()

    def _load(self, module_name: str) -> None:
        if module_name in self._loaded:
            return
        self._loaded.add(module_name)
        module = importlib.import_module(f"reconciler.cli.{module_name}")
        module.register(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module_name in COMMAND_MODULES.get(cmd_name, ()):
            self._load(module_name)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reconciler")
@click.option("--store", "store", metavar="PATH|URL", envvar="RECONCILER_STORE",
              help="Store location: a directory (default ./.reconciler) or postgresql://user@host:port/db "
                   "(env RECONCILER_STORE).")
@click.option("--blobs", "blobs", metavar="DIR|URL", envvar="RECONCILER_BLOBS",
              help="Blob storage: a folder or s3://BUCKET/PREFIX (env RECONCILER_BLOBS). Optional for a "
                   "directory store (default: inside it; the store remembers it), required for a PostgreSQL "
                   "store. S3 settings come from the AWS_* variables.")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("--log-format", type=click.Choice(logfmt.FORMATS), default="text", show_default=True,
              envvar=logfmt.ENV, help="Log lines as text, or one JSON object per line for log collectors "
                                      "(errors, serve's access log, watch's tick lines; env RECONCILER_LOG_FORMAT).")
@click.pass_context
def cli(ctx: click.Context, store: str | None, blobs: str | None, verbose: int, quiet: bool, log_format: str) -> None:
    """Declarative management of container image repositories.

    \b
    Describe repositories in repos.yaml, then:
      reconciler validate -f repos.yaml
      reconciler plan -f repos.yaml
      reconciler apply -f repos.yaml
      reconciler serve

    \b
    A shared store on PostgreSQL (bytes in a folder every process sees, or in S3):
      reconciler --store postgresql://reconciler@db:5432/reconciler --blobs /srv/blobs apply -f repos.yaml
    """
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logfmt.choose(log_format)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logfmt.formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    ctx.obj = AppContext(store_location=store, blobs_location=blobs, quiet=quiet)
    ctx.call_on_close(ctx.obj.close)


def main(argv: list[str] | None = None) -> None:
    try:
        # without standalone mode click returns Exit codes instead of exiting
        rc = cli.main(args=argv, prog_name="reconciler", standalone_mode=False)
    except ReconcilerError as exc:
        if logfmt.current() == "json":
            record = logging.LogRecord("reconciler", logging.ERROR, "", 0, exc.message, None, None)
            record.fields = {"error": type(exc).__name__, "hint": exc.hint}
            click.echo(logfmt.JsonFormatter().format(record), err=True)
            sys.exit(exc.exit_code)
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        from reconciler.cli.interrupts import exit_now

        click.echo(f"stopped: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        exit_now(exc.exit_code)  # abandoned downloads must not delay the exit
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(rc if isinstance(rc, int) else 0)
