"""Golden renderings of one plan that exercises every line shape: text (Terraform
style), JSON (format_version 2) and Markdown. Regenerate with UPDATE_GOLDEN=1 and
review the diff like any other change a user would see."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.desired.model import CopySpec, Removal, TagPin
from reconciler.model.content import Origin
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from reconciler.plan.render_json import render_json
from reconciler.plan.render_markdown import render_markdown
from reconciler.plan.render_text import render_text
from tests.support.planworld import RepositorySpec, desired, digest, observed, repo, state, synced

GOLDEN = Path(__file__).parent / "golden"


def example_plan() -> Plan:
    S = Origin.SYNC
    obs = observed({
        "synctest": repo("synctest", state({"latest": ("a", S), "1.35.0": ("multi", S), "1.36.1": ("a", S)}),
                         feed="http://127.0.0.1:5000", upstream="lib/synctest", publish="pulpdemo/synctest",
                         published=1),
        "containers2": repo("containers2", state({"old": ("a", Origin.MANUAL), "test": ("a", Origin.MANUAL)}),
                            publish="prod/busybox", published=1),
        "schema2": repo("schema2", state({"latest": ("a", Origin.PIN)})),
        "leftover": repo("leftover", state({"x": ("a", Origin.MANUAL)})),
    }, {"synctest": {"latest": "b", "1.37.0": "b", "1.36.1": "a"}})
    spec = desired(
        synced("synctest", mirror=True, publish="pulpdemo/synctest"),
        RepositorySpec("containers2", copies=(CopySpec("synctest", tags=("1.37.0",)),),
                       pins=(TagPin("stable", source_repo="synctest", source_tag="1.37.0"),),
                       publish="prod/busybox", protected=True),
        RepositorySpec("schema2", pins=(TagPin("latest", digest=digest("a")),)),
        RepositorySpec("fresh", copies=(CopySpec("synctest", tags=("1.36.1",)),), remove=Removal(tags=("x",))),
    )
    return diff(spec, obs, created="2026-01-01T00:00:00+00:00")


def no_change_plan() -> Plan:
    obs = observed({"schema2": repo("schema2", state({"latest": ("a", Origin.PIN)}))}, {})
    return diff(desired(RepositorySpec("schema2", pins=(TagPin("latest", digest=digest("a")),))), obs,
                created="2026-01-01T00:00:00+00:00")


RENDERERS: dict[str, tuple[Callable[[Plan], str], str]] = {
    "text": (lambda p: render_text(p), "txt"),
    "json": (render_json, "json"),
    "markdown": (render_markdown, "md"),
}


@pytest.mark.parametrize("name,make", [("example", example_plan), ("nochange", no_change_plan)])
@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_golden(name: str, make: Callable[[], Plan], fmt: str) -> None:
    render, ext = RENDERERS[fmt]
    out = render(make())
    path = GOLDEN / f"{name}.{ext}"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(out)
    assert out == path.read_text(), f"rendering changed; review and run UPDATE_GOLDEN=1 if intended ({path})"


def test_text_colour_only_when_asked() -> None:
    plan = example_plan()
    assert "\x1b[" not in render_text(plan)
    coloured = render_text(plan, color=True)
    assert "\x1b[32m" in coloured and "\x1b[31m" in coloured


def test_summary_lines() -> None:
    assert render_text(no_change_plan()).rstrip().endswith("No changes.")
    last = render_text(example_plan()).rstrip().splitlines()[-1]
    assert last.startswith("Plan: ") and "to add" in last and "to download." in last


def test_json_is_the_saved_plan() -> None:
    plan = example_plan()
    doc = json.loads(render_json(plan))
    assert doc["format_version"] == 2 and Plan.from_json(doc) == plan


def test_markdown_calls_out_destructive_actions() -> None:
    md = render_markdown(example_plan())
    warning = md.split("> [!WARNING]")[1].split("\n\n")[0]
    assert "tag 1.35.0" in warning and "gone upstream" in warning
    assert "copy tag" not in warning
