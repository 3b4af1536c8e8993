"""The PostgreSQL store beyond the conformance suite (which runs on it through the
``store`` fixture): the advisory apply lock across processes, concurrent writers and
first-time migrations, crash safety of a blob write, the store-id binding to a folder or
an S3 prefix, dropped connections and a lost lock, and the CLI end to end
(``--store postgresql://... --blobs DIR``: apply, plan, store check, gc)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest

from reconciler.errors import Conflict, LockTimeout, StoreError
from reconciler.model import Digest
from reconciler.model.content import ContentSet, TagEntry
from reconciler.model.descriptor import Descriptor
from reconciler.store.postgres import PostgresStore
from tests.conftest import REPO_ROOT
from tests.support.cli import RunCli
from tests.support.imagegen import build_image, store_image
from tests.support.narrow import narrow
from tests.support.postgres import PostgresServer
from tests.support.registry import free_port
from tests.support.s3server import S3Server

DEMO = REPO_ROOT / "examples" / "demo.yaml"

HOLDER = textwrap.dedent("""
    import sys, time
    from reconciler.store.postgres import PostgresStore
    store = PostgresStore(sys.argv[1], blobs=sys.argv[2])
    with store.lock(5):
        print("locked", flush=True)
        time.sleep(float(sys.argv[3]))
    store.close()
""")


def _holder(url: str, blobs: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(blobs), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_apply_lock_excludes_other_processes_and_names_the_holder(postgres_url: str, tmp_path: Path) -> None:
    store = PostgresStore(postgres_url, blobs=tmp_path / "blobs")
    try:
        with _holder(postgres_url, tmp_path / "blobs", 3) as proc:
            with pytest.raises(LockTimeout, match=rf"locked by another process \(reconciler pid {proc.pid}@"):
                with store.lock(0.3):
                    pass
        with store.lock(1):  # free again after the holder exits
            pass
    finally:
        store.close()


def test_apply_lock_excludes_threads_of_one_process(postgres_url: str, tmp_path: Path) -> None:
    store = PostgresStore(postgres_url, blobs=tmp_path / "blobs")
    try:
        with store.lock(1):
            with pytest.raises(LockTimeout), store.lock(0.2):
                pass
    finally:
        store.close()


def test_lock_released_when_holder_is_killed(postgres_url: str, tmp_path: Path) -> None:
    store = PostgresStore(postgres_url, blobs=tmp_path / "blobs")
    try:
        with _holder(postgres_url, tmp_path / "blobs", 60) as proc:
            proc.send_signal(signal.SIGKILL)
        # the server notices the dropped connection and releases the lock
        with store.lock(10):
            pass
    finally:
        store.close()


def test_concurrent_commits_from_one_base_make_exactly_one_version(postgres_url: str, tmp_path: Path) -> None:
    """Eight writers (each its own connection) commit different tags on version 0 at
    once: the generation row lock orders them, one wins, the others see the moved base."""
    stores = [PostgresStore(postgres_url, blobs=tmp_path / "blobs") for _ in range(8)]
    try:
        img = build_image("race")
        store_image(stores[0], img)
        stores[0].repository_create("r")
        content = ContentSet(frozenset(Digest.parse(d) for d in img.blobs), frozenset({img.digest}))
        gate = threading.Barrier(len(stores))
        outcomes: list[str] = []

        def commit(i: int) -> None:
            gate.wait(10)
            try:
                stores[i].version_commit("r", base=0, content=content, tags={f"t{i}": TagEntry(img.digest)},
                                         operation="race")
                outcomes.append("ok")
            except Conflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=commit, args=(i,)) for i in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
        latest = stores[0].version_get("r")
        assert latest.number == 1 and len(latest.tags) == 1
        assert stores[0].check().ok
    finally:
        for s in stores:
            s.close()


OPENER = textwrap.dedent("""
    import sys
    from reconciler.store.postgres import PostgresStore
    PostgresStore(sys.argv[1], blobs=sys.argv[2]).close()
""")


def test_first_open_migrates_once_when_processes_race(postgres_server: PostgresServer, tmp_path: Path) -> None:
    name = f"race_{free_port()}"
    postgres_server.admin(f"CREATE DATABASE {name}")  # empty: no migrations yet
    url = postgres_server.url(name)
    try:
        procs = [subprocess.Popen([sys.executable, "-c", OPENER, url, str(tmp_path / "blobs")], cwd=REPO_ROOT,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        store = PostgresStore(url, blobs=tmp_path / "blobs")
        try:
            assert store.generation() == 0 and store.repository_list() == []
        finally:
            store.close()
    finally:
        postgres_server.drop_database(url)


WRITER = textwrap.dedent("""
    import sys, time
    from reconciler.model import Digest
    from reconciler.store.postgres import PostgresStore
    store = PostgresStore(sys.argv[1], blobs=sys.argv[2])
    expected = Digest.parse(sys.argv[3])
    def chunks():
        for i in range(10_000):
            if i == 5:
                print("writing", flush=True)
            time.sleep(0.01)
            yield b"x" * 65536
    store.blob_put(chunks(), expected)
""")


def test_sigkill_mid_blob_leaves_no_visible_blob(postgres_url: str, tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    expected = Digest.of(b"x" * 65536 * 10_000)
    with subprocess.Popen([sys.executable, "-c", WRITER, postgres_url, str(blobs), str(expected)],
                          stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    store = PostgresStore(postgres_url, blobs=blobs)
    try:
        assert not store.blob_has(expected) and store.blob_path(expected) is None
        assert list((blobs / "tmp").iterdir()), "the partial write sits in tmp/, invisible"
        assert store.check().ok
    finally:
        store.close()


def test_a_blobs_folder_of_another_store_is_refused(postgres_server: PostgresServer, tmp_path: Path) -> None:
    """A wrong --blobs would make every byte look missing, and gc would delete the other
    store's files as unreferenced: the database and its folder are bound by a store id."""
    urls = [postgres_server.checkout() for _ in range(2)]
    try:
        for url, folder in zip(urls, ("a", "b"), strict=True):
            store = PostgresStore(url, blobs=tmp_path / folder)
            img = build_image(folder)
            store_image(store, img)
            store.close()
        with pytest.raises(StoreError, match=r"does not belong to the PostgreSQL store.*it has store id"):
            PostgresStore(urls[0], blobs=tmp_path / "b")
        with pytest.raises(StoreError, match="it has no store id"):
            PostgresStore(urls[0], blobs=tmp_path / "empty")
        store = PostgresStore(urls[0], blobs=tmp_path / "a")  # the right folder still opens
        try:
            assert store.check().ok and store.check().blobs_checked > 0
        finally:
            store.close()
        assert list((tmp_path / "b" / "blobs" / "sha256").iterdir()), "nothing of b was touched"
    finally:
        for url in urls:
            postgres_server.checkin(url)


def test_a_new_database_is_refused_storage_that_holds_another_stores_blobs(
        postgres_server: PostgresServer, tmp_path: Path) -> None:
    """Adopting the other store's id would let this store's gc delete its blobs."""
    urls = [postgres_server.checkout() for _ in range(2)]
    try:
        store = PostgresStore(urls[0], blobs=tmp_path / "a")
        store_image(store, build_image("a"))
        store.close()
        with pytest.raises(StoreError, match=r"belongs to another store .*holds blobs") as err:
            PostgresStore(urls[1], blobs=tmp_path / "a")
        assert err.value.hint and "its own folder" in err.value.hint
        store = PostgresStore(urls[0], blobs=tmp_path / "a")
        try:
            assert store.check().ok
        finally:
            store.close()
    finally:
        for url in urls:
            postgres_server.checkin(url)


def test_s3_blobs_are_bound_by_a_store_id_object(postgres_server: PostgresServer, s3_server: S3Server,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    urls = [postgres_server.checkout() for _ in range(2)]
    prefixes = [s3_server.bucket_url("bind") for _ in range(2)]
    try:
        for url, prefix in zip(urls, prefixes, strict=True):
            store = PostgresStore(url, blobs=prefix)
            try:
                img = build_image(prefix)
                store_image(store, img)
                assert store.manifest_raw(img.digest)[1] == img.manifest.raw  # manifests are objects too
            finally:
                store.close()
        keys = s3_server.keys(prefixes[0])
        assert any(k.endswith("/store-id") for k in keys) and any("/manifests/sha256/" in k for k in keys)
        with pytest.raises(StoreError, match=r"does not belong to the PostgreSQL store.*it has store id"):
            PostgresStore(urls[0], blobs=prefixes[1])
        with pytest.raises(StoreError, match=r"first opened with --blobs s3://"):
            PostgresStore(urls[0], blobs=prefixes[1])
        store = PostgresStore(urls[0], blobs=prefixes[0])
        try:
            assert store.check().ok and store.check().blobs_checked > 0
        finally:
            store.close()
    finally:
        for url in urls:
            postgres_server.checkin(url)


def _drop_connections(url: str) -> None:
    """What a database restart does to every client: their connections end."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def test_reads_survive_a_dropped_connection_and_writes_fail_once(postgres_url: str, tmp_path: Path) -> None:
    store = PostgresStore(postgres_url, blobs=tmp_path / "blobs")
    try:
        store.repository_create("a")
        _drop_connections(postgres_url)
        assert [r.id for r in store.repository_list()] == ["a"]  # sent again on a new connection
        _drop_connections(postgres_url)
        assert store.version_get("a").number == 0  # a snapshot read, too
        _drop_connections(postgres_url)
        with pytest.raises(StoreError, match="terminating connection") as err:
            store.repository_create("b")  # a write is never sent twice: it fails
        assert err.value.hint and "run the command again" in err.value.hint
        store.repository_create("b")  # the next one has a new connection
        assert [r.id for r in store.repository_list()] == ["a", "b"]
    finally:
        store.close()


def test_writes_are_refused_once_the_apply_lock_is_lost(postgres_url: str, tmp_path: Path) -> None:
    """The lock's session ended (a restart), so another apply may hold it now: this
    process must not write on as if it still had it."""
    store = PostgresStore(postgres_url, blobs=tmp_path / "blobs")
    try:
        with store.lock(5):
            store.repository_create("before")
            _drop_connections(postgres_url)
            with pytest.raises(StoreError):
                store.repository_create("after")  # the dropped write connection itself
            with pytest.raises(StoreError, match="apply lock .* was lost") as err:
                store.repository_create("after")
            assert err.value.hint and "run the command again" in err.value.hint
        with store.lock(5):  # a new lock works as before
            store.repository_create("after")
        assert [r.id for r in store.repository_list()] == ["after", "before"]
    finally:
        store.close()


def test_unreachable_server_is_a_store_error(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(StoreError, match="cannot connect to the PostgreSQL store") as err:
        PostgresStore(url, blobs=tmp_path / "blobs")
    assert err.value.hint and "server runs" in err.value.hint


def test_location_hides_the_password(postgres_url: str, tmp_path: Path) -> None:
    from reconciler.store.postgres.connection import redact

    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    store = PostgresStore(postgres_url, blobs=tmp_path / "blobs")
    try:
        assert store.location == postgres_url
    finally:
        store.close()


# -- the command line ---------------------------------------------------------------------

def test_cli_needs_blobs_for_a_postgresql_store(postgres_url: str, run_cli: RunCli) -> None:
    proc = run_cli("repo", "list", store=postgres_url)
    assert proc.returncode != 0
    assert "needs --blobs" in proc.stderr and "hint:" in proc.stderr


def test_cli_apply_demo_then_plan_has_no_changes_and_store_is_sound(
        postgres_url: str, tmp_path: Path, run_cli: RunCli) -> None:
    """scripts/demo.sh against PostgreSQL: apply the offline demo, a second plan has
    nothing to do, `store check` finds every byte and reference; then gc after removing
    a repository frees its content and leaves the store sound."""
    env = {"RECONCILER_BLOBS": str(tmp_path / "blobs")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, store=postgres_url, env=env)

    applied = cli("apply", "-f", str(DEMO))
    assert applied.returncode == 0, applied.stderr
    again = cli("plan", "-f", str(DEMO), "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    check = cli("store", "check", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["ok"] and report["blobs_checked"] > 0 and report["store"] == postgres_url
    assert list((tmp_path / "blobs" / "blobs" / "sha256").iterdir())
    repos = json.loads(cli("repo", "list", "--json").stdout)
    assert repos, "the demo created repositories"


def test_cli_store_check_and_gc(postgres_url: str, tmp_path: Path, run_cli: RunCli) -> None:
    blobs = tmp_path / "blobs"
    store = PostgresStore(postgres_url, blobs=blobs)
    keep, drop = build_image("keep"), build_image("drop")
    for img in (keep, drop):
        store_image(store, img)
    store.repository_create("r")
    store.version_commit("r", base=0, content=ContentSet(frozenset(Digest.parse(d) for d in keep.blobs),
                                                          frozenset({keep.digest})), tags={}, operation="x")
    store.close()
    env = {"RECONCILER_BLOBS": str(blobs)}
    gc = run_cli("store", "gc", store=postgres_url, env=env)
    assert gc.returncode == 0, gc.stderr
    assert f": {len(drop.blobs)} blobs, 1 manifest" in gc.stdout and gc.stdout.startswith("freed ")
    assert run_cli("store", "check", store=postgres_url, env=env).returncode == 0
    victim = keep.manifest.layers[-1].digest
    path = blobs / "blobs" / "sha256" / victim.hex[:2] / victim.hex
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    bad = run_cli("store", "check", store=postgres_url, env=env)
    assert bad.returncode == 1 and str(victim) in bad.stdout
    again = PostgresStore(postgres_url, blobs=blobs)
    try:
        assert not again.manifest_has(drop.digest) and again.blob_has(narrow(Descriptor, keep.manifest.config).digest)
    finally:
        again.close()
