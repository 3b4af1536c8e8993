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
    code = ("import sys\nfrom reconciler.cli import main\n"
            "try:\n    main(['--store', sys.argv[1], 'repo', 'list'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('jsonschema', 'gunicorn', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
