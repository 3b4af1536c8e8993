"""The lazy command table: every command a CLI module registers is reachable, and a
light command does not import the heavy libraries of the others."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import click

import reconciler.cli
from reconciler.cli import COMMAND_MODULES, cli


def test_every_registered_command_is_in_the_table() -> None:
    group = click.Group()
    modules = [m.name for m in pkgutil.iter_modules(reconciler.cli.__path__)]
    for name in ("repo_cmds", *sorted(m for m in modules if m != "repo_cmds")):
        module = importlib.import_module(f"reconciler.cli.{name}")
        if hasattr(module, "register"):
            module.register(group)
    assert set(group.commands) == set(COMMAND_MODULES)
    ctx = click.Context(cli)
    for name in COMMAND_MODULES:
        assert cli.get_command(ctx, name) is not None, name
    repo = cli.get_command(ctx, "repo")
    assert isinstance(repo, click.Group) and "rollback" in repo.commands


def test_light_commands_skip_heavy_imports(tmp_path: Path) -> None:
    from reconciler.store.sqlite import SQLiteStore

    SQLiteStore(tmp_path / "store").close()  # `repo list` reads an existing store (it creates none)
    code = ("import sys\nfrom reconciler.cli import main\n"
            "try:\n    main(['--store', sys.argv[1], 'repo', 'list'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('jsonschema', 'gunicorn', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def _help(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "reconciler", *args, "--help"], capture_output=True, text=True,
                          check=True).stdout


def test_serve_help_and_the_server_docs_agree_on_how_it_stops() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    help_text = " ".join(_help("serve").split())
    assert "SIGTERM (graceful" in help_text and "Ctrl-C (immediate" in help_text
    assert "SIGTERM: stop accepting, let in-flight requests finish" in docs
    assert "Ctrl-C (SIGINT) or SIGQUIT: immediate" in docs


def test_shell_completion_completes_commands_and_options() -> None:
    env = {"COMP_WORDS": "reconciler apply --sk", "COMP_CWORD": "2", "_RECONCILER_COMPLETE": "bash_complete"}
    out = subprocess.run([sys.executable, "-m", "reconciler"], capture_output=True, text=True,
                         env={**__import__("os").environ, **env}).stdout
    assert "plain,--skip-unavailable" in out.splitlines()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "_RECONCILER_COMPLETE=bash_source" in readme  # documented where the commands are


def test_repo_delete_takes_y_for_yes() -> None:
    assert "-y, --yes" in _help("repo", "delete")
