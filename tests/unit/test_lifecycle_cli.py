"""The storage-lifecycle commands as a user runs them: ``store gc`` (text, JSON, dry
run), ``store du``, ``repo prune-versions``, ``repo diff``, ``history --prune-before``,
and ``retain_versions`` in repos.yaml."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.imagegen import build_image
from tests.support.serving import commit_tags


def filled(path: Path, versions: int = 5) -> list[int]:
    """``web`` with ``versions`` versions, tag ``latest`` on a new ~2 KiB image each time
    and tag ``base`` on one image throughout; returns the recorded bytes of each image."""
    s = SQLiteStore(path)
    try:
        base = build_image("base")
        sizes = []
        for i in range(1, versions + 1):
            img = build_image(f"web-{i}", payload=256)
            commit_tags(s, "web", {"latest": img, "base": base})
            sizes.append(sum(len(b) for b in img.blobs.values()) + len(img.manifest.raw))
        return sizes
    finally:
        s.close()


def test_prune_versions_then_gc_gives_the_bytes_back(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "store"
    sizes = filled(path)
    run_cli("publish", "web", "--version", "2", "--name", "team/web", store=path, check=True)
    dry = run_cli("repo", "prune-versions", "web", "--keep", "2", "--dry-run", store=path, check=True)
    assert dry.stdout.startswith("web: would drop versions 0-1, 3 (frees ~")
    assert "kept versions 2, 4-5 (2: published)" in dry.stdout
    out = run_cli("repo", "prune-versions", "web", "--keep", "2", "--json", store=path, check=True)
    result = json.loads(out.stdout)
    assert result == {"repository": "web", "dropped": [0, 1, 3], "kept": [2, 4, 5],
                      "protected": {"2": ["published"]}, "frees_bytes": sizes[0] + sizes[2], "dry_run": False}
    history = json.loads(run_cli("repo", "history", "web", "--json", store=path, check=True).stdout)
    assert [v["number"] for v in history] == [2, 4, 5]

    gone = run_cli("repo", "show", "web", "--version", "3", store=path)
    assert gone.returncode == 1 and "has no version 3" in gone.stderr
    rollback = run_cli("repo", "rollback", "web", "--to", "3", store=path)
    assert rollback.returncode == 1 and "no longer has version 3" in rollback.stderr and "hint:" in rollback.stderr

    dry_gc = json.loads(run_cli("store", "gc", "--dry-run", "--json", store=path, check=True).stdout)
    assert dry_gc == {"freed_bytes": sizes[0] + sizes[2], "blobs_removed": 6, "manifests_removed": 2,
                      "temporary_files_removed": 0, "dry_run": True}
    gc = run_cli("store", "gc", store=path, check=True)
    freed = sizes[0] + sizes[2]
    assert gc.stdout.strip() == f"freed {freed / 1024:.1f} KiB: 6 blobs, 2 manifests"
    assert run_cli("store", "gc", store=path, check=True).stdout.strip() == "freed 0 B: 0 blobs, 0 manifests"
    assert run_cli("store", "check", store=path).returncode == 0

    refused = run_cli("repo", "prune-versions", "web", "--keep", "0", store=path)
    assert refused.returncode == 2 and "0 is not in the range x>=1" in refused.stderr


def test_store_du(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "store"
    sizes = filled(path, versions=3)
    usage = json.loads(run_cli("store", "du", "--json", store=path, check=True).stdout)
    assert set(usage) == {"total_bytes", "unreferenced_bytes", "repositories"}
    [web] = usage["repositories"]
    assert web["id"] == "web" and web["versions"] == 4
    assert web["old_versions_bytes"] == sizes[0] + sizes[1]
    assert web["unique_bytes"] == usage["total_bytes"] and usage["unreferenced_bytes"] == 0
    text = run_cli("store", "du", store=path, check=True).stdout.splitlines()
    assert text[0].split() == ["REPOSITORY", "VERSIONS", "LATEST", "UNIQUE", "OLD"]
    assert text[1].split()[:2] == ["web", "4"]
    assert text[-1].startswith("total ") and "unreferenced (freed by `store gc`) 0 B" in text[-1]


def test_repo_diff_tag_by_tag(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "store"
    s = SQLiteStore(path)
    a, b, c = build_image("a"), build_image("b"), build_image("c")
    commit_tags(s, "web", {"stay": a, "move": a, "gone": b})
    commit_tags(s, "web", {"stay": a, "move": c})
    commit_tags(s, "web", {"stay": a, "move": c, "new": b})
    s.close()
    out = json.loads(run_cli("repo", "diff", "web", "1", "3", "--json", store=path, check=True).stdout)
    assert out["tags"] == [
        {"tag": "gone", "change": "removed", "old": str(b.digest), "new": None},
        {"tag": "move", "change": "moved", "old": str(a.digest), "new": str(c.digest)},
        {"tag": "new", "change": "added", "old": None, "new": str(b.digest)},
    ]
    assert out["added"]["manifests"] == 1 and out["removed"]["manifests"] == 0
    text = run_cli("repo", "diff", "web", "1", store=path, check=True).stdout  # to the latest
    assert text.splitlines()[:4] == [
        "web: version 1 -> 3", f"  - tag gone\t{b.digest}", f"  ~ tag move\t{a.digest} -> {c.digest}",
        f"  + tag new\t{b.digest}"]
    same = run_cli("repo", "diff", "web", "3", "3", store=path, check=True).stdout
    assert same.splitlines()[-1] == "  no changes"


def test_history_prune_before(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "store"
    s = SQLiteStore(path)
    for _ in range(3):
        s.journal_finish(s.journal_start(command="apply x", plan_digest=None, details={}), result="ok", details={})
    s.close()
    kept = run_cli("history", "--prune-before", "2001-01-01", store=path, check=True)
    assert kept.stdout.strip() == "removed 0 journal entries started before 2001-01-01T00:00:00+00:00"
    out = json.loads(run_cli("history", "--prune-before", "2999-12-31T23:00:00-02:00", "--json",
                             store=path, check=True).stdout)
    assert out == {"before": "3000-01-01T01:00:00+00:00", "entries_removed": 3}
    assert run_cli("history", store=path, check=True).stdout.strip() == "no applies yet"
    bad = run_cli("history", "--prune-before", "last tuesday", store=path)
    assert bad.returncode == 1 and "not a date or time" in bad.stderr and "hint: give YYYY-MM-DD" in bad.stderr


def test_retain_versions_must_be_at_least_one(run_cli: RunCli, tmp_path: Path) -> None:
    yaml = tmp_path / "repos.yaml"
    yaml.write_text("version: 1\ndefaults: {retain_versions: 0}\nrepositories:\n  web: {retain_versions: 2}\n")
    out = run_cli("validate", "-f", str(yaml))
    assert out.returncode == 1 and "defaults.retain_versions" in out.stdout + out.stderr
    yaml.write_text("version: 1\ndefaults: {retain_versions: 3}\nrepositories:\n  web: {retain_versions: 2}\n")
    assert run_cli("validate", "-f", str(yaml)).returncode == 0
