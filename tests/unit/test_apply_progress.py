"""How apply shows download progress: plain lines in logs, one rewritten status line on
a terminal, per repository (several repositories download at once)."""

from __future__ import annotations

import io

import pytest

from reconciler.cli.apply_progress import ApplyProgress
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
    progress = ApplyProgress(tty=tty, stream=out)
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
    progress = ApplyProgress(tty=False, stream=out)
    progress("copy", ProgressEvent("blobs", 0, 30))
    progress("copy", ProgressEvent("blobs", 30, 30, 0))
    assert out.getvalue().splitlines()[-1] == "copy: 30 blobs already stored"  # not "downloaded 30 blobs, 0 B"
