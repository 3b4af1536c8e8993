"""``reconciler drift`` for each cause, through the real CLI against a real distribution
registry: a tag moved upstream (upstream), a one-off tag removal and a hand rollback
(manual), an edited repos.yaml (desired), a blob file deleted from the store (store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import RunCli
from tests.support.imagegen import build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.integration

IMAGES = {n: build_image(f"drift-{n}") for n in ("a", "b", "c")}


def yaml_text(registry: RunningRegistry, upstream: str, *, pin: str = "v1") -> str:
    return f"""version: 1
registries:
  up: {{url: {registry.url}, tls_verify: false}}
repositories:
  web:
    feed: up
    upstream_name: {upstream}
    publish: team/web
  prod:
    pins:
      stable: web:{pin}
    copy:
      - {{from: web, tags: [v1]}}
    publish: team/prod
"""


def drift(run_cli: RunCli, store: Path, yaml: Path) -> tuple[int, dict[str, Any]]:
    proc = run_cli("drift", "-f", str(yaml), "--json", "--detailed-exitcode", store=store)
    assert proc.returncode in (0, 2), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def causes(report: dict[str, Any]) -> dict[str, list[str]]:
    return {c: sorted(i["action"] or i["what"] for i in items) for c, items in report["causes"].items() if items}


def test_drift_names_each_cause(registry: RunningRegistry, repo_name: str, tmp_path: Path,
                                run_cli: RunCli) -> None:
    push_image(registry.url, repo_name, IMAGES["a"], ["v1"])
    push_image(registry.url, repo_name, IMAGES["b"], ["v2"])
    yaml, store = tmp_path / "repos.yaml", tmp_path / "store"
    yaml.write_text(yaml_text(registry, repo_name))

    rc, report = drift(run_cli, store, yaml)
    assert rc == 2 and set(causes(report)) == {"desired"}, "a store never applied: all of repos.yaml is desired drift"
    run_cli("apply", "-f", str(yaml), store=store, check=True)
    rc, report = drift(run_cli, store, yaml)
    assert (rc, report["drift"], report["last_apply"]["result"]) == (0, False, "ok")
    assert "No drift" in run_cli("drift", "-f", str(yaml), store=store, check=True).stdout

    # upstream: v1 moved upstream; prod's copy and pin follow it, so they are upstream too
    push_image(registry.url, repo_name, IMAGES["c"], ["v1"])
    rc, report = drift(run_cli, store, yaml)
    assert rc == 2
    assert causes(report) == {"upstream": ["prod/copy_tag/v1", "prod/pin_tag/stable", "prod/publish/team/prod",
                                           "web/publish/team/web", "web/sync_tag/v1"]}
    run_cli("apply", "-f", str(yaml), store=store, check=True)

    # manual: a tag removed by hand, a synced tag moved by hand (the plan calls it "moved
    # upstream", the history says who), and a hand rollback
    run_cli("remove", "tag", "prod", "stable", store=store, check=True)
    run_cli("tag", "web", "v2", str(IMAGES["a"].digest), store=store, check=True)
    run_cli("repo", "rollback", "web", "--to", "1", store=store, check=True)
    rc, report = drift(run_cli, store, yaml)
    assert rc == 2
    assert causes(report) == {"manual": ["prod/pin_tag/stable", "prod/publish/team/prod", "web/publish/team/web",
                                         "web/sync_tag/v2"]}
    why = {i["action"]: i["why"] for i in report["causes"]["manual"]}
    assert "`remove tag`" in why["prod/pin_tag/stable"] and "`tag v2`" in why["web/sync_tag/v2"]
    assert "rolled back by hand (`repo rollback`)" in why["web/publish/team/web"]
    text = run_cli("drift", "-f", str(yaml), store=store).stdout
    assert "manual (4)" in text
    plan = run_cli("plan", "-f", str(yaml), store=store).stdout
    assert "the publication was at version 1: rolled back by hand" in plan  # the plan says so too
    run_cli("apply", "-f", str(yaml), store=store, check=True)
    assert drift(run_cli, store, yaml)[0] == 0

    # desired: repos.yaml now pins stable to v2
    yaml.write_text(yaml_text(registry, repo_name, pin="v2"))
    rc, report = drift(run_cli, store, yaml)
    assert causes(report) == {"desired": ["prod/pin_tag/stable", "prod/publish/team/prod"]}
    assert "changed since the last apply" in report["causes"]["desired"][0]["why"]
    run_cli("apply", "-f", str(yaml), store=store, check=True)

    # store: a blob file deleted behind the store's back
    blob = next(p for p in (store / "blobs").rglob("*") if p.is_file() and p.parent.name != "tmp")
    blob.unlink()
    rc, report = drift(run_cli, store, yaml)
    assert rc == 2 and list(causes(report)) == ["store"]
    assert report["causes"]["store"][0]["what"].startswith("missing sha256:")
