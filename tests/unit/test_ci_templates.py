"""examples/ci: the GitHub Actions workflow and the GitLab CI file are valid YAML, every
``reconciler`` command in them parses with today's command line (an option renamed
later fails here), and each template plans on review and applies the saved plan on merge."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from reconciler.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"
TEMPLATES = sorted(EXAMPLES.glob("*.yml"))


def commands(text: str) -> list[list[str]]:
    """Every ``reconciler ...`` invocation, up to the first shell operator."""
    out = []
    for m in re.finditer(r"(?m)^(?!\s*#)[^\n]*?\breconciler ((?:--[\w-]+ \S+ )*[a-z].*)$", text):
        words = []
        for word in shlex.split(m[1].replace("\\\n", " ")):
            if word in ("||", "&&", "|", ">", ";") or word.startswith(">"):
                break
            words.append(word)
        out.append(words)
    return out


def parse(args: list[str]) -> None:
    # the global options, then the command and its own: each parsed by its click command
    i = 0
    while args[i].startswith("--"):
        i += 2
    cli.make_context("reconciler", [*args[:i], "validate", "-f", "x"])
    cmd = cli.get_command(click.Context(cli), args[i])
    assert cmd is not None, f"no command {args[i]}"
    rest = args[i + 1:]
    while isinstance(cmd, click.Group):
        cmd, rest = cmd.get_command(click.Context(cmd), rest[0]), rest[1:]
        assert cmd is not None
    cmd.make_context(args[i], rest)


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.name for p in TEMPLATES])
def test_template_is_valid_and_its_commands_parse(path: Path) -> None:
    text = path.read_text()
    assert isinstance(yaml.safe_load(text), dict)
    found = commands(text)
    assert len(found) >= 3
    for args in found:
        parse(args)
    joined = [" ".join(a) for a in found]
    assert any(a.startswith("plan -f repos.yaml --out plan.json --markdown") for a in joined)
    assert any(re.search(r"apply plan\.json", a) for a in joined)
    assert "RECONCILER_PLAN_KEY" in text


def test_commands_finds_and_checks_options() -> None:
    assert commands("run: reconciler plan -f x --out p.json || true") == [["plan", "-f", "x", "--out", "p.json"]]
    with pytest.raises(click.UsageError):
        parse(["plan", "-f", "x", "--no-such-option"])
