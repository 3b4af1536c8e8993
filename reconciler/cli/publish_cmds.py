"""``reconciler publish``, ``reconciler unpublish`` and ``reconciler repo rollback``: each
an action of ``apply.commands`` run under the store lock (docs/architecture.md, "One way in")."""

from __future__ import annotations

import click

from reconciler.apply import commands
from reconciler.apply.oneoff import run_command
from reconciler.cli.context import AppContext, echo_json, pass_app
from reconciler.model.repository import Repository

_LOCK_HELP = "Seconds to wait for the store lock."


def _render(repo: Repository, as_json: bool, verb: str) -> None:
    if as_json:
        echo_json({"id": repo.id, "publish_name": repo.publish_name, "published_version": repo.published_version,
                   "protected": repo.protected, "latest_version": repo.latest_version})
        return
    if repo.published_version is None and repo.publish_name is None:
        click.echo(f"{verb} {repo.id} (no publish name reserved)")
    elif repo.published_version is None:
        click.echo(f"{verb} {repo.id} (name {repo.publish_name} stays reserved; --release frees it)")
    else:
        flag = "protected" if repo.protected else "public"
        click.echo(f"{verb} {repo.id} version {repo.published_version} as {repo.publish_name} ({flag})")


@click.command("publish")
@click.argument("repo_id")
@click.option("--name", help="Publish name (Docker name rules); default: the stored one, else the repository id.")
@click.option("--version", "version", type=int, default=None, help="Version to publish (default: latest).")
@click.option("--protected/--public", default=None, help="Require credentials to pull (default: keep).")
@click.option("--lock-timeout", type=float, default=60.0, show_default=True, help=_LOCK_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def publish_cmd(app: AppContext, repo_id: str, name: str | None, version: int | None, protected: bool | None,
                lock_timeout: float, as_json: bool) -> None:
    """Serve a repository version under a publish name (an atomic switch).

    \b
    Example:
      reconciler publish synctest --name pulpdemo/synctest --version 3 --protected
    """
    repo = run_command(app.store, commands.Publish(repo_id, name, version, protected), lock_timeout=lock_timeout)
    _render(repo, as_json, "published")


@click.command("unpublish")
@click.argument("repo_id")
@click.option("--release", is_flag=True,
              help="Also give up the publish name, so another repository can take it.")
@click.option("--lock-timeout", type=float, default=60.0, show_default=True, help=_LOCK_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def unpublish_cmd(app: AppContext, repo_id: str, release: bool, lock_timeout: float, as_json: bool) -> None:
    """Stop serving a repository. Its publish name stays reserved for it unless
    --release gives it up (a repository that repos.yaml declares gets the name with
    the next apply anyway: the plan hands names over).

    \b
    Examples:
      reconciler unpublish synctest
      reconciler unpublish old-app --release
    """
    repo = run_command(app.store, commands.Unpublish(repo_id, release), lock_timeout=lock_timeout)
    _render(repo, as_json, "unpublished")


@click.command("rollback")
@click.argument("repo_id")
@click.option("--to", "to", type=int, required=True, help="Version to serve instead.")
@click.option("--lock-timeout", type=float, default=60.0, show_default=True, help=_LOCK_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def rollback_cmd(app: AppContext, repo_id: str, to: int, lock_timeout: float, as_json: bool) -> None:
    """Point a repository's publication at an older (or any) version.

    \b
    Example:
      reconciler repo rollback synctest --to 2
    """
    repo = run_command(app.store, commands.Rollback(repo_id, to), lock_timeout=lock_timeout)
    _render(repo, as_json, "rolled back")


def register(cli: click.Group) -> None:
    cli.add_command(publish_cmd)
    cli.add_command(unpublish_cmd)
    repo = cli.commands.get("repo")
    if not isinstance(repo, click.Group):
        raise RuntimeError("publish_cmds must be registered after repo_cmds")
    repo.add_command(rollback_cmd)
