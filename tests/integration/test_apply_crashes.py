"""Crash safety of apply, point by point: SIGKILL a real ``reconciler apply`` subprocess
at store write event N (``RECONCILER_APPLY_KILL_AT=write:N``, see tests/support/crashpoints.py)
for N spread over one whole run, then re-run it.

What a user relies on: whatever moment an apply dies at, the next apply converges to
exactly the state an uninterrupted apply reaches (every repository's latest and
published version: same content, same tags), ``store check`` is clean, and the temporary
files the kill left behind are removed by ``store gc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler import api
from reconciler.model.content import ContentSet, TagEntry
from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.crashpoints import MODULE as CRASHPOINTS
from tests.support.imagegen import build_image, build_multiarch
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry

#: kill points tried (all of them when a run has fewer write events)
POINTS = 15


@dataclass(frozen=True)
class RepoState:
    latest: tuple[ContentSet, tuple[tuple[str, TagEntry], ...]]
    published: tuple[str | None, ContentSet | None, tuple[tuple[str, TagEntry], ...]]


def snapshot(root: Path) -> dict[str, RepoState]:
    """Every repository's latest and published version, by content and tags (version
    numbers may differ: a killed run may have committed some of them)."""
    store = SQLiteStore(root)
    try:
        out = {}
        for repo in store.repository_list():
            latest = store.version_get(repo.id)
            pub_content: ContentSet | None = None
            pub_tags: tuple[tuple[str, TagEntry], ...] = ()
            if repo.published_version is not None:
                pub = store.version_get(repo.id, repo.published_version)
                pub_content, pub_tags = pub.content, tuple(sorted(pub.tags.items()))
            out[repo.id] = RepoState((latest.content, tuple(sorted(latest.tags.items()))),
                                     (repo.publish_name, pub_content, pub_tags))
        return out
    finally:
        store.close()


def write_yaml(path: Path, registry: RunningRegistry, upstream: str, *, prod: bool = True) -> Path:
    # one request at a time: the write events come in the same order in every run
    path.write_text(f"""version: 1
registries:
  up: {{url: "{registry.url}", tls_verify: false, max_concurrency: 1}}
repositories:
  web: {{feed: up, upstream_name: {upstream}, mirror: true, publish: team/web}}
""" + ("" if not prod else """  prod:
    copy:
      - {from: web, tags: [latest]}
    pins:
      stable: web:v1
    publish: team/prod
"""))
    return path


BLOB_EVENTS = ("blob_put ", "batch blob_put ")


def kill_points(events: list[str]) -> list[int]:
    """``POINTS`` event numbers: every metadata write (repository, manifests, the content
    batch's commit before and after its rows, version, publication: the transitions), the
    rest spread evenly over the blob writes, both kinds (inside a blob write, which leaves
    a temporary file, and after one: staged in the batch, a temporary file too)."""
    if len(events) <= POINTS:
        return list(range(1, len(events) + 1))
    metadata = [i for i, e in enumerate(events, 1) if not e.startswith(BLOB_EVENTS)]
    blobs = [i for i, e in enumerate(events, 1) if e.startswith(BLOB_EVENTS)]
    k = max(2, POINTS - len(metadata))
    spread = {blobs[round(j * (len(blobs) - 1) / (k - 1))] for j in range(k)}
    return sorted(spread | set(metadata))


def test_sigkill_at_every_point_of_an_apply_then_rerun_converges(
        registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    push_image(registry.url, repo_name, build_image("crash-v1"), ["v1"])
    push_image(registry.url, repo_name, build_multiarch("crash-multi"), ["v2", "latest"])
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name)

    # an uninterrupted run: the state to reach, and its write events
    log = tmp_path / "writes.log"
    reference = tmp_path / "reference"
    run_cli("apply", "-f", str(yaml), store=reference, check=True, env={"RECONCILER_APPLY_WRITE_LOG": str(log)},
            module=CRASHPOINTS)
    events = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    assert sum(e.startswith("batch blob_put ") for e in events) == 13  # every blob once
    # the content is made durable and recorded once, after the downloads, before any version
    assert events.count("batch commit (files in place, rows not yet)") == 1
    assert events.index("batch commit") < events.index("version_commit")
    assert events[-1] == "publish"
    expected = snapshot(reference)
    assert set(expected) == {"web", "prod"} and expected["prod"].published[0] == "team/prod"

    left_temp_files = []
    for n in kill_points(events):
        store = tmp_path / f"killed-at-{n}"
        killed = run_cli("apply", "-f", str(yaml), store=store, env={"RECONCILER_APPLY_KILL_AT": f"write:{n}"},
                         module=CRASHPOINTS)
        assert killed.returncode == -9, f"write {n} ({events[n - 1]}): {killed.stdout}{killed.stderr}"
        temp_files = list((store / "tmp").iterdir())
        if temp_files:
            left_temp_files.append(n)

        s = SQLiteStore(store)
        try:
            _, result = api.apply_file(s, yaml)  # the re-run
            assert result.ok, (n, result.to_json())
            assert s.journal_list()[1].result == "interrupted"
            report = s.gc()
            assert report.temp_files_removed == len(temp_files), (n, events[n - 1])
            assert list((store / "tmp").iterdir()) == []
            check = s.check()
            assert check.ok, (n, events[n - 1], check.problems)
        finally:
            s.close()
        assert snapshot(store) == expected, f"killed at write {n} ({events[n - 1]})"
    # the kill inside a blob write really left a temporary file for gc to remove
    assert left_temp_files, "no kill point left a temporary file"


@pytest.mark.parametrize(("point", "temp_files", "removed"), [
    ("write:5", 3, ": 0 blobs, 0 manifests, 3 temporary files"),
    ("write:9", 0, ": 3 blobs, 1 manifest"),
], ids=["third-blob-in-a-temporary-file", "content-recorded-no-version-yet"])
def test_store_gc_cli_removes_what_a_killed_apply_left(point: str, temp_files: int, removed: str,
                                                      registry: RunningRegistry, repo_name: str, tmp_path: Path,
                                                      run_cli: RunCli) -> None:
    img = build_image("crash-gc")
    push_image(registry.url, repo_name, img, ["v1"])
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name, prod=False)
    store = tmp_path / "store"
    # write:5: the third blob sits in a temporary file, the first two are staged in the
    # content batch (temporary files too, nothing recorded); write:9: the batch committed
    # (3 blobs and the manifest recorded), no version references them yet
    killed = run_cli("apply", "-f", str(yaml), store=store, env={"RECONCILER_APPLY_KILL_AT": point},
                     module=CRASHPOINTS)
    assert killed.returncode == -9, killed.stderr
    assert len(list((store / "tmp").iterdir())) == temp_files
    gc = run_cli("store", "gc", store=store)
    assert gc.returncode == 0, gc.stderr
    assert gc.stdout.startswith("freed ") and gc.stdout.rstrip().endswith(removed), gc.stdout
    assert list((store / "tmp").iterdir()) == []
    assert run_cli("store", "check", store=store).returncode == 0
    assert run_cli("apply", "-f", str(yaml), store=store).returncode == 0
