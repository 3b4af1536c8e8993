"""How sync and apply show download progress (one renderer): plain lines in logs, one
rewritten status line on a terminal; per repository for apply (several download at once),
per phase for a sync."""

from __future__ import annotations

import io

import pytest

from reconciler.cli.progress import ProgressRenderer
from reconciler.ops.parallel import ProgressEvent

EVENTS = [
    ("web", ProgressEvent("manifests", 0, 2)), ("web", ProgressEvent("manifests", 2, 2, 900)),
    ("web", ProgressEvent("blobs", 0, 2)), ("db", ProgressEvent("blobs", 0, 1)),
    ("web", ProgressEvent("blobs", 1, 2, 1024 * 1024)), ("db", ProgressEvent("blobs", 1, 1, 2048)),
    ("web", ProgressEvent("blobs", 2, 2, 3 * 1024 * 1024)),
]


@pytest.mark.parametrize("tty", [False, True], ids=["log", "terminal"])
def test_each_repository_gets_a_start_and_a_done_line(tty: bool) -> None:
    out = io.StringIO()
    progress = ProgressRenderer(tty=tty, stream=out)
    for repo, event in EVENTS:
        progress(repo, event)
    progress.close()
    text = out.getvalue()
    lines = [line.split("\r\x1b[K")[-1] for line in text.split("\n") if line.split("\r\x1b[K")[-1]]
    assert "db: downloaded 1 blob, 2.0 KiB" in lines
    assert "web: downloaded 2 blobs, 3.0 MiB" in lines
    if tty:
        assert "downloading: web 1/2 1.0 MiB | db 0/1 0 B" in text  # the live status line
        assert text.endswith("\r\x1b[K") or text.endswith("\n")
    else:
        assert "\r" not in text and "\x1b" not in text  # nothing but plain lines in a log
        assert lines == ["web: downloading 2 blobs", "db: downloading 1 blob", "db: downloaded 1 blob, 2.0 KiB",
                         "web: downloaded 2 blobs, 3.0 MiB"]


def test_blobs_another_download_brought_are_already_stored_not_downloaded() -> None:
    out = io.StringIO()
    progress = ProgressRenderer(tty=False, stream=out)
    progress("copy", ProgressEvent("blobs", 0, 30))
    progress("copy", ProgressEvent("blobs", 30, 30, 0))
    assert out.getvalue().splitlines()[-1] == "copy: 30 blobs already stored"  # not "downloaded 30 blobs, 0 B"


def _sync_events() -> list[ProgressEvent]:
    return ([ProgressEvent("tags", n, 2) for n in range(3)] + [ProgressEvent("manifests", n, 1) for n in range(2)]
            + [ProgressEvent("blobs", n, 20, n * 1024) for n in range(21)])


def test_a_sync_shows_every_phase_in_a_log_at_most_every_tenth() -> None:
    out = io.StringIO()
    progress = ProgressRenderer(tty=False, stream=out, phases=True).for_repository("web")
    for event in _sync_events():
        progress(event)
    lines = out.getvalue().splitlines()
    assert lines[:5] == ["resolving tags: 0/2", "resolving tags: 1/2", "resolving tags: 2/2",
                         "fetching manifests: 0/1", "fetching manifests: 1/1"]
    blobs = lines[5:]
    assert blobs[0] == "downloading blobs: 0/20" and blobs[-1] == "downloading blobs: 20/20 (20.0 KiB)"
    assert len(blobs) == 11  # 21 events, one line per tenth


def test_a_sync_on_a_terminal_rewrites_one_line_and_keeps_each_finished_phase() -> None:
    out = io.StringIO()
    renderer = ProgressRenderer(tty=True, stream=out, phases=True)
    for event in _sync_events():
        renderer("web", event)
    renderer.close()
    kept = [line.split("\r\x1b[K")[-1] for line in out.getvalue().split("\n")][:-1]
    assert kept == ["resolving tags: 2/2", "fetching manifests: 1/1", "downloading blobs: 20/20 (20.0 KiB)"]
    assert "\r\x1b[Kdownloading blobs: 7/20 (7.0 KiB)" in out.getvalue()  # the live status line


@pytest.mark.parametrize("tty", [False, True], ids=["log", "terminal"])
def test_a_push_shows_its_uploads_per_target(tty: bool) -> None:
    """Push targets (issue 23) report their uploads like downloads, with the push's words."""
    out = io.StringIO()
    progress = ProgressRenderer(tty=tty, stream=out)
    for event in (ProgressEvent("manifests", 0, 3), ProgressEvent("upload", 0, 2),
                  ProgressEvent("upload", 1, 2, 1024), ProgressEvent("upload", 2, 2, 5 * 1024 * 1024)):
        progress("web -> harbor/team/web", event)
    progress("db -> harbor/team/db", ProgressEvent("upload", 0, 4))
    progress("db -> harbor/team/db", ProgressEvent("upload", 4, 4, 0))
    progress.close()
    text = out.getvalue()
    lines = [line.split("\r\x1b[K")[-1] for line in text.split("\n") if line.split("\r\x1b[K")[-1]]
    assert "web -> harbor/team/web: uploaded 2 blobs, 5.0 MiB" in lines
    assert "db -> harbor/team/db: 4 blobs already there" in lines  # not "uploaded 4 blobs, 0 B"
    assert "download" not in text
    if tty:
        assert "uploading: web -> harbor/team/web 1/2 1.0 KiB" in text  # the live status line
    else:
        assert "\r" not in text and "\x1b" not in text
        assert lines[0] == "web -> harbor/team/web: uploading 2 blobs"
