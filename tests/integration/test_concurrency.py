"""Concurrency: two applies at once, gc during an apply, ``reconciler serve`` clients during
apply and gc. Real processes throughout; an apply is kept in flight (its blobs stored,
its version not committed yet) by a ``FaultProxy`` that holds one blob download until the
test releases it, so every overlap is certain, not a matter of timing.

What a user relies on: a second apply (or gc) waits for the store lock, or fails after
``--lock-timeout`` naming the holder; gc never removes what an in-flight apply fetched
nor what a published version needs; a client pulling from the server never sees a
partial version: every manifest a tag points at is there with all its blobs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from reconciler.errors import LockTimeout
from reconciler.model import Digest, Index, parse_manifest
from reconciler.model.mediatypes import ACCEPT_ALL
from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.imagegen import build_image, build_multiarch, store_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry
from tests.support.serving import REPO_ROOT, content_of, run_server

WAIT = 120.0  # no wait in these tests is longer (they take seconds)


def start_cli(*args: str, store: Path) -> subprocess.Popen[str]:
    """``reconciler --store STORE ARGS`` in the background (``finish`` collects it)."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", "reconciler", "--store", str(store), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": pythonpath})


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def write_yaml(path: Path, proxy: FaultProxy, upstream: str) -> Path:
    path.write_text(f"""version: 1
registries:
  up: {{url: "{proxy.url}", tls_verify: false, max_concurrency: 1}}
repositories:
  web: {{feed: up, upstream_name: {upstream}, publish: team/web}}
""")
    return path


def hold_blob(proxy: FaultProxy, digest: Digest) -> Fault:
    """Keep the apply that downloads ``digest`` in flight until ``release()``."""
    return proxy.add(f"^GET .*/blobs/{digest}$", "hold")


def wait_held(fault: Fault, proc: subprocess.Popen[str]) -> None:
    if not fault.held.wait(WAIT):
        proc.kill()
        raise AssertionError(f"the apply never reached the held blob: {finish(proc)}")


def blob_files(store: Path) -> set[str]:
    return {p.name for p in (store / "blobs").rglob("*") if p.is_file()}


def temp_files(store: Path) -> set[str]:
    return {p.name for p in (store / "tmp").iterdir()}


def test_a_second_apply_and_gc_wait_for_the_lock_or_fail_naming_the_holder(
        proxy: FaultProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    img = build_image("lock-held")
    push_image(registry.url, repo_name, img, ["v1"])
    yaml = write_yaml(tmp_path / "repos.yaml", proxy, repo_name)
    store = tmp_path / "store"
    held = hold_blob(proxy, Digest.parse(max(img.blobs)))  # blobs are fetched in digest order: the last one
    first = start_cli("apply", "-f", str(yaml), store=store)
    waiting: list[subprocess.Popen[str]] = []
    try:
        wait_held(held, first)
        # downloaded by the first apply, in its content batch: temporary files, nothing recorded yet
        in_flight = temp_files(store)
        assert len(in_flight) == 2 and blob_files(store) == set()

        for args in (["apply", "-f", str(yaml)], ["store", "gc"]):
            refused = run_cli(*args, "--lock-timeout", "0.5", store=store)
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert f"is locked by another process (pid {first.pid} since " in refused.stderr, refused.stderr
            assert f" UTC: reconciler apply -f {yaml}) (waited 0.5 s)" in refused.stderr, refused.stderr
            assert "raise --lock-timeout" in refused.stderr
        s = SQLiteStore(store)
        try:
            with pytest.raises(LockTimeout):  # the library's gc takes the lock too
                s.gc(lock_timeout=0.3)
        finally:
            s.close()
        assert temp_files(store) == in_flight  # gc, locked out, removed none of them

        # these wait for the lock instead, and run once the first apply is done
        waiting = [start_cli("apply", "-f", str(yaml), "--lock-timeout", "60", store=store),
                   start_cli("store", "gc", "--lock-timeout", "60", store=store)]
        held.release()
        code, out, err = finish(first)
        assert code == 0, out + err
        assert "Apply complete: 3 done" in out, out
    finally:
        held.release()
        results = [finish(p) for p in (first, *waiting)]
    (_, _, _), (apply_code, apply_out, apply_err), (gc_code, gc_out, gc_err) = results
    assert apply_code == 0 and apply_out.rstrip().splitlines()[-1].startswith("Apply complete: 0 done"), apply_out
    assert gc_code == 0 and gc_out.startswith("freed 0 B: 0 blobs, 0 manifests"), gc_out + gc_err
    assert blob_files(store) == {Digest.parse(d).hex for d in img.blobs}
    assert run_cli("store", "check", store=store).returncode == 0


class Puller:
    """A client loop against ``reconciler serve``: list the tags of ``name``, GET every
    manifest a tag points at (and an index's children), GET every blob and check its
    digest. Every problem is recorded; ``rounds`` counts complete passes."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.rounds = 0
        self.failures: list[str] = []
        self.seen: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="puller", daemon=True)

    def __enter__(self) -> Puller:
        self._thread.start()
        self.wait_rounds(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT)

    def wait_rounds(self, n: int) -> None:
        """Until ``n`` more complete passes are done (bounded)."""
        target = self.rounds + n
        deadline = time.monotonic() + WAIT
        while self.rounds < target:
            assert self._thread.is_alive() and time.monotonic() < deadline, self.failures
            time.sleep(0.02)

    def _get(self, session: requests.Session, path: str, **headers: str) -> requests.Response:
        resp = session.get(f"{self.url}/v2/{self.name}/{path}", headers=headers, timeout=30)
        if resp.status_code != 200:
            self.failures.append(f"GET {path}: {resp.status_code} {resp.text[:200]}")
        return resp

    def _pass(self, session: requests.Session) -> None:
        tags = self._get(session, "tags/list").json().get("tags") or []
        seen = {}
        for tag in tags:
            resp = self._get(session, f"manifests/{tag}", Accept=ACCEPT_ALL)
            if resp.status_code != 200:
                continue
            top = parse_manifest(resp.content, resp.headers.get("Content-Type"))
            seen[tag] = str(top.digest)
            manifests = [top]
            if isinstance(top, Index):
                for child in top.children():
                    r = self._get(session, f"manifests/{child}", Accept=ACCEPT_ALL)
                    if r.status_code == 200:
                        manifests.append(parse_manifest(r.content, r.headers.get("Content-Type")))
            for m in manifests:
                if isinstance(m, Index):
                    continue
                for desc in m.blobs():
                    blob = self._get(session, f"blobs/{desc.digest}")
                    if blob.status_code == 200 and Digest.of(blob.content) != desc.digest:
                        self.failures.append(f"blob {desc.digest}: wrong bytes")
        self.seen = seen

    def _loop(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    self._pass(session)
                except Exception as exc:  # noqa: BLE001 - recorded, the test fails on it
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    return
                self.rounds += 1


def test_serve_clients_never_see_a_partial_version_during_apply_and_gc(
        proxy: FaultProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    old, multi, new = build_image("serve-old"), build_multiarch("serve-multi"), build_image("serve-new")
    push_image(registry.url, repo_name, old, ["v1", "latest"])
    yaml = write_yaml(tmp_path / "repos.yaml", proxy, repo_name)
    store = tmp_path / "store"
    run_cli("apply", "-f", str(yaml), store=store, check=True)

    with run_server(store, tmp_path / "serve.log") as server, Puller(server.url, "team/web") as puller:
        assert puller.seen == {"v1": str(old.digest), "latest": str(old.digest)}
        # upstream: v1 moves, v2 (an index) is new, latest moves to it
        push_image(registry.url, repo_name, new, ["v1"])
        push_image(registry.url, repo_name, multi, ["v2", "latest"])
        held = hold_blob(proxy, Digest.parse(max({**new.blobs, **multi.all_blobs()})))
        apply = start_cli("apply", "-f", str(yaml), store=store)
        gc: subprocess.Popen[str] | None = None
        try:
            wait_held(held, apply)
            # the apply has stored blobs and holds the lock; clients keep pulling the old version
            puller.wait_rounds(3)
            assert puller.seen == {"v1": str(old.digest), "latest": str(old.digest)}
            gc = start_cli("store", "gc", store=store)  # waits for the apply's lock
            held.release()
            code, out, err = finish(apply)
            assert code == 0, out + err
        finally:
            held.release()
            if apply.poll() is None:
                finish(apply)
            gc_result = finish(gc) if gc is not None else (1, "", "gc never started")
        assert gc_result[0] == 0 and gc_result[1].startswith("freed 0 B: 0 blobs, 0 manifests"), gc_result
        puller.wait_rounds(2)
        assert puller.seen == {"v1": str(new.digest), "v2": str(multi.digest), "latest": str(multi.digest)}

        # gc that does remove something (a deleted repository's content) while clients pull
        scratch = build_image("serve-scratch")
        s = SQLiteStore(store)
        try:
            store_image(s, scratch)
            s.repository_create("scratch")
            s.version_commit("scratch", base=0, content=content_of(scratch), tags={}, operation="test")
            s.repository_delete("scratch")
        finally:
            s.close()
        collected = start_cli("store", "gc", store=store)
        puller.wait_rounds(1)
        code, out, err = finish(collected)
        assert code == 0 and out.startswith("freed ") and f": {len(scratch.blobs)} blobs, 1 manifest" in out, out + err
        puller.wait_rounds(2)
    assert puller.failures == []
    assert run_cli("store", "check", store=store).returncode == 0
