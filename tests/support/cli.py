"""The type of the ``run_cli`` fixture (tests/conftest.py): run the CLI in a subprocess,
with real exit codes and real stdout/stderr. Tests annotate the fixture with ``RunCli``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Protocol


class RunCli(Protocol):
    def __call__(self, *args: str, store: Path | str | None = None, check: bool = False, input: str | None = None,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 module: str = "reconciler") -> subprocess.CompletedProcess[str]: ...
