"""Crash safety and locking across real processes, and the CLI's `store check`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.errors import LockTimeout
from reconciler.model import Digest
from reconciler.model.content import ContentSet
from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.imagegen import build_image, store_image

WRITER = textwrap.dedent("""
    import sys, time
    from reconciler.model import Digest
    from reconciler.store.sqlite import SQLiteStore
    store = SQLiteStore(sys.argv[1])
    expected = Digest.parse(sys.argv[2])
    def chunks():
        for i in range(10_000):
            if i == 5:
                print("writing", flush=True)
            time.sleep(0.01)
            yield b"x" * 65536
    store.blob_put(chunks(), expected)
""")


def test_sigkill_mid_blob_leaves_no_visible_blob(tmp_path: Path) -> None:
    root = tmp_path / "store"
    SQLiteStore(root).close()
    expected = Digest.of(b"x" * 65536 * 10_000)
    with subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(expected)], stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    store = SQLiteStore(root)
    assert not store.blob_has(expected)
    assert store.blob_path(expected) is None
    assert list((root / "tmp").iterdir()), "the partial write sits in tmp/, invisible"
    assert store.check().ok
    store.close()


HOLDER = textwrap.dedent("""
    import sys, time
    from reconciler.store.sqlite import SQLiteStore
    store = SQLiteStore(sys.argv[1])
    with store.lock(5):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def test_apply_lock_excludes_other_processes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = SQLiteStore(root)
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(root), "3"], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockTimeout, match=r"locked by another process \(pid"), store.lock(0.3):
            pass
    with store.lock(1):  # free again after the holder exits
        pass
    store.close()


def test_lock_released_when_holder_is_killed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = SQLiteStore(root)
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(root), "60"], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        proc.send_signal(signal.SIGKILL)
    with store.lock(2):
        pass
    store.close()


def test_cli_store_check_names_corrupt_blob(tmp_path: Path, run_cli: RunCli) -> None:
    root = tmp_path / "store"
    store = SQLiteStore(root)
    img = build_image("cli")
    store_image(store, img)
    store.repository_create("r")
    blobs = frozenset(Digest.parse(d) for d in img.blobs)
    store.version_commit("r", base=0, content=ContentSet(blobs, frozenset({img.digest})), tags={}, operation="x")
    store.close()
    ok = run_cli("store", "check", store=root)
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout
    victim = img.manifest.layers[-1].digest
    path = root / "blobs" / "sha256" / victim.hex[:2] / victim.hex
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    bad = run_cli("store", "check", store=root)
    assert bad.returncode == 1
    assert str(victim) in bad.stdout
    js = run_cli("store", "check", "--json", store=root)
    assert js.returncode == 1 and str(victim) in js.stdout and '"ok": false' in js.stdout


def test_cli_basics(tmp_path: Path, run_cli: RunCli) -> None:
    root = tmp_path / "s"
    v = run_cli("--version")
    assert v.returncode == 0 and "reconciler" in v.stdout
    assert run_cli("repo", "create", "demo", store=root).returncode == 0
    show = run_cli("repo", "show", "demo", "--json", store=root)
    assert show.returncode == 0 and '"tags": {}' in show.stdout
    missing = run_cli("repo", "show", "nope", store=root)
    assert missing.returncode == 1 and missing.stderr.startswith("error: ") and "hint:" in missing.stderr
    env_store = run_cli("repo", "list", env={"RECONCILER_STORE": str(root)})
    assert "demo" in env_store.stdout
    hist = run_cli("repo", "history", "demo", store=root)
    assert hist.returncode == 0 and "create" in hist.stdout
    assert not (tmp_path / ".reconciler").exists()
    # a check of a store that is not there is an error, and creates nothing (a mistyped path)
    default = run_cli("store", "check", cwd=tmp_path)
    assert default.returncode == 1 and "there is no store at" in default.stderr, default.stderr
    assert not (tmp_path / ".reconciler").exists()
    assert run_cli("repo", "create", "demo", cwd=tmp_path).returncode == 0 and (tmp_path / ".reconciler").is_dir()
    assert run_cli("store", "check", cwd=tmp_path).returncode == 0


def test_gc_removes_the_temp_files_of_dead_writers_only(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = SQLiteStore(root)
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        pass  # exited and reaped: its pid names no process now
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            files = {name: root / "tmp" / name for name in
                     (f"put-{gone.pid}-dead", f"put-{alive.pid}-live", f"put-{os.getpid()}-mine", "unknown")}
            for path in files.values():
                path.write_bytes(b"partial")
            report = store.gc()
            left = sorted(p.name for p in (root / "tmp").iterdir())
        finally:
            alive.kill()
    store.close()
    # a live writer (another process, or a thread of this one) may still rename its file into place
    assert report.temp_files_removed == 1
    assert left == sorted([f"put-{alive.pid}-live", f"put-{os.getpid()}-mine", "unknown"])
