"""The default ``max_concurrency`` (16 since issue 24's second round): what a registry of
repos.yaml gets when it says nothing, what the one-off commands' ``--jobs`` default to,
and what the schema and docs/repos-yaml.md tell the user. 16 requests in flight are what
a no-change refresh across a real network needs (bench/README.md, "Latency and request
count"); a registry that throttles sets less."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.desired import load_desired
from reconciler.desired.schema import load_schema

ROOT = Path(__file__).resolve().parents[2]


def test_a_registry_that_says_nothing_gets_16_and_its_own_setting_wins(tmp_path: Path) -> None:
    path = tmp_path / "repos.yaml"
    path.write_text("version: 1\nregistries:\n  far: {url: 'https://far.example'}\n"
                    "  slow: {url: 'https://slow.example', max_concurrency: 3}\n"
                    "repositories:\n  a: {feed: far, upstream_name: a}\n  b: {feed: slow, upstream_name: b}\n")
    state = load_desired(path)
    assert state.registries["far"].max_concurrency == 16
    assert state.registries["slow"].max_concurrency == 3


def test_the_commands_schema_and_docs_say_16() -> None:
    for command in (["sync", "--help"], ["push", "--help"]):
        out = CliRunner().invoke(cli, command, terminal_width=200).output
        assert re.search(r"--jobs [^\n]*\[default: 16[;\]]", out), out
    texts = re.findall(r"against this registry \(default (\d+)\)", json.dumps(load_schema()))
    assert texts == ["16", "16"]  # registries: and defaults.registry:
    assert "| `registries.<name>.max_concurrency` | 1-64 | `16` |" in (ROOT / "docs" / "repos-yaml.md").read_text()
