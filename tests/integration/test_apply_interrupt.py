"""Ctrl-C and SIGTERM during a real ``reconciler apply`` whose upstream stalls mid-blob:
it stops at once (the stalled download is abandoned, not awaited to its timeout), shows
nothing partial, journals ``interrupted``, exits 130 / 143; the next apply converges."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.cli import RunCli
from tests.support.faultproxy import FaultProxy
from tests.support.imagegen import build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry

#: the stalled read would last this long if the apply waited for it
UPSTREAM_TIMEOUT = 30


def start_apply(yaml: Path, store: Path) -> subprocess.Popen[str]:
    """The real CLI in a process of its own (the caller closes it: ``communicate``)."""
    env = {**os.environ, "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "reconciler", "--store", str(store), "apply", "-f", str(yaml)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=yaml.parent)


def wait_for(condition: Callable[[], object], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["sigint", "sigterm"])
def test_a_signal_stops_the_apply_at_once_journals_it_and_the_next_apply_converges(
        sig: signal.Signals, code: int, proxy: FaultProxy, registry: RunningRegistry, repo_name: str,
        tmp_path: Path, run_cli: RunCli) -> None:
    image = build_image(f"interrupt-{repo_name}", layers=3)
    push_image(registry.url, repo_name, image, ["v1"])
    yaml = tmp_path / "repos.yaml"
    yaml.write_text(f"""version: 1
registries:
  up: {{url: "{proxy.url}", tls_verify: false, timeout: {UPSTREAM_TIMEOUT}, retries: 0}}
repositories:
  web: {{feed: up, upstream_name: {repo_name}, publish: team/web}}
  copy: {{copy: [{{from: web, tags: [v1]}}], publish: team/copy}}
""")
    stalled = proxy.add(r"^GET .*/blobs/sha256:", "stall", times=None, after=10)
    store = tmp_path / "store"
    apply = start_apply(yaml, store)
    lines: list[str] = []
    assert apply.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(apply.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: stalled.hits > 0)  # a blob download is in flight, stalled
        # the plan is printed before the downloads start (as `terraform apply` shows it first)
        wait_for(lambda: any(line.startswith("Plan: ") for line in lines), seconds=10)
        assert any("+ tag v1" in line for line in lines)
        sent = time.monotonic()
        apply.send_signal(sig)
        apply.wait(timeout=UPSTREAM_TIMEOUT)
        took = time.monotonic() - sent
        reader.join(timeout=10)
        err = apply.stderr.read() if apply.stderr else ""
    finally:
        apply.kill()
        stalled.release()
        for pipe in (apply.stdout, apply.stderr):
            if pipe is not None:
                pipe.close()
    out = "".join(lines)
    assert apply.returncode == code, out + err
    assert took < 5, f"stopping took {took:.1f} s: the stalled download was waited for"
    assert out.index("+ tag v1") < out.index("Apply INTERRUPTED"), out
    assert f"Stopped: interrupted by {sig.name}" in err
    entry = json.loads(run_cli("history", "--json", store=store, check=True).stdout)[0]
    assert entry["result"] == "interrupted" and f"interrupted by {sig.name}" in entry["details"]["summary"]
    # nothing partial is visible: no repository was created, no name is served
    assert json.loads(run_cli("repo", "list", "--json", store=store, check=True).stdout) == []
    assert run_cli("store", "check", store=store).returncode == 0

    proxy.clear()
    again = run_cli("apply", "-f", str(yaml), store=store)
    assert again.returncode == 0, again.stdout + again.stderr
    plan = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert plan.returncode == 0 and plan.stdout.rstrip().endswith("No changes.")
    assert run_cli("store", "check", store=store).returncode == 0


def test_ctrl_c_while_waiting_for_the_lock_stops_the_wait(tmp_path: Path, run_cli: RunCli) -> None:
    from reconciler.store.sqlite import SQLiteStore

    yaml = tmp_path / "repos.yaml"
    yaml.write_text("version: 1\nrepositories:\n  r: {}\n")
    store_path = tmp_path / "store"
    holder = SQLiteStore(store_path)
    try:
        with holder.lock():
            apply = start_apply(yaml, store_path)
            time.sleep(1.5)  # started, and waiting for the lock (60 s by default)
            sent = time.monotonic()
            apply.send_signal(signal.SIGINT)
            out, err = apply.communicate(timeout=30)
            took = time.monotonic() - sent
    finally:
        holder.close()
    assert apply.returncode == 130 and took < 3, (took, out, err)
    assert "stopped: interrupted by SIGINT" in err


SECOND = """
import os, signal, sys, time
from reconciler.cli.interrupts import stop_on_signals
from reconciler.ops.stop import StopToken
stop = StopToken()
with stop_on_signals(stop):
    print("ready", flush=True)
    while True:          # an operation that does not look at the token
        time.sleep(0.05)
        if stop.requested:
            print("requested", flush=True)
            while True:
                time.sleep(0.05)
"""


def test_a_second_ctrl_c_exits_at_once() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with subprocess.Popen([sys.executable, "-c", SECOND], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.readline().strip() == "ready"
            proc.send_signal(signal.SIGINT)
            assert proc.stdout.readline().strip() == "requested"  # the first one only asks
            assert proc.poll() is None
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=5)
            err = proc.stderr.read()
        finally:
            proc.kill()
    assert proc.returncode == 130
    assert "press Ctrl-C again to exit at once" in err and "SIGINT again: exiting at once" in err
