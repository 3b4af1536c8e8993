"""The object-storage guard (bulkhead + circuit breaker), the manifest cache, and the
apply's stop guard: the rules a replica and an apply rely on when S3 or the lock fails."""

from __future__ import annotations

import io
import threading
import time

import pytest

from reconciler.apply.stop import GUARDED, StopFlag, StoppingStore
from reconciler.errors import BlobStorageError, ContentNotFound, Interrupted
from reconciler.model import Digest
from reconciler.server.errors import RegistryHTTPError
from reconciler.server.guard import CLOSED, HALF_OPEN, OPEN, StorageGuard
from reconciler.server.manifestcache import ManifestCache
from tests.support.crashpoints import WRITE_METHODS


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _fail(guard: StorageGuard) -> RegistryHTTPError:
    with pytest.raises(RegistryHTTPError) as err, guard.call():
        raise BlobStorageError("GET x: Read timeout")
    return err.value


def test_failures_in_a_row_open_the_circuit_then_requests_fail_fast() -> None:
    clock = Clock()
    guard = StorageGuard(slots=2, failures=3, cooldown=10, clock=clock)
    for _ in range(2):
        failure = _fail(guard)
        assert failure.status == 503 and failure.code == "UNAVAILABLE" and "Read timeout" in failure.message
    assert guard.state == CLOSED
    _fail(guard)
    assert guard.state == OPEN
    ran = []
    with pytest.raises(RegistryHTTPError) as err, guard.call():
        ran.append(1)  # never reached: the open circuit refuses without trying
    assert not ran and err.value.status == 503 and int(err.value.headers["Retry-After"]) == 10
    clock.now += 4
    with pytest.raises(RegistryHTTPError) as err, guard.call():
        pass
    assert int(err.value.headers["Retry-After"]) == 6


def test_after_the_cooldown_one_probe_decides() -> None:
    clock = Clock()
    guard = StorageGuard(slots=4, failures=1, cooldown=10, clock=clock)
    _fail(guard)
    clock.now += 10
    assert guard.state == HALF_OPEN
    _fail(guard)  # the probe failed: open for another cooldown
    assert guard.state == OPEN
    clock.now += 10
    with guard.call():
        # while the probe runs, nobody else tries
        with pytest.raises(RegistryHTTPError), guard.call():
            pass
    assert guard.state == CLOSED
    with guard.call():
        pass


def test_a_missing_object_is_an_answer_not_a_failure() -> None:
    guard = StorageGuard(slots=1, failures=1)
    for _ in range(3):
        with pytest.raises(ContentNotFound), guard.call():
            raise ContentNotFound("no such key")
    assert guard.state == CLOSED


def test_the_bulkhead_leaves_threads_for_everything_else() -> None:
    guard = StorageGuard(slots=2, slot_wait=0.2)
    inside, leave = threading.Barrier(3), threading.Event()

    def hold() -> None:
        with guard.call():
            inside.wait()
            leave.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    started = time.monotonic()
    with pytest.raises(RegistryHTTPError) as err, guard.call():
        pass
    assert 0.2 <= time.monotonic() - started < 2  # waited for a slot, briefly
    assert err.value.status == 503 and err.value.headers["Retry-After"] == "1"
    leave.set()
    for t in threads:
        t.join()
    with guard.call():
        pass
    assert guard.state == CLOSED  # a full bulkhead is no storage failure


def test_a_request_waiting_for_a_slot_gets_it_when_one_frees() -> None:
    guard = StorageGuard(slots=1, slot_wait=5)
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with guard.call():
            entered.set()
            leave.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    entered.wait()
    threading.Timer(0.2, leave.set).start()
    started = time.monotonic()
    with guard.call():
        assert time.monotonic() - started < 4
    t.join()


class FailingReader(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, b: object) -> int:
        raise BlobStorageError("GET blob: Read timeout on the body")


def test_a_body_that_fails_midway_counts_as_a_storage_failure() -> None:
    guard = StorageGuard(slots=1, failures=1)
    reader = guard.watched(io.BufferedReader(FailingReader()))
    with guard.call():  # a streaming body holds no slot
        pass
    with pytest.raises(BlobStorageError):
        reader.read(10)
    assert guard.state == CLOSED  # counted once the reader is closed
    reader.close()
    assert guard.state == OPEN


def _d(n: int) -> Digest:
    return Digest.parse(f"sha256:{n:064x}")


def test_manifest_cache_keeps_the_recently_used_within_its_bytes() -> None:
    cache = ManifestCache(max_bytes=400)
    loads: list[Digest] = []

    def load(d: Digest) -> tuple[str, bytes]:
        loads.append(d)
        return "application/x", bytes(100)

    for n in (1, 2, 3, 4):
        cache.get(_d(n), load)
    cache.get(_d(1), load)  # a hit: 1 becomes the most recent
    cache.get(_d(5), load)  # evicts 2, the least recently used
    assert loads == [_d(1), _d(2), _d(3), _d(4), _d(5)]
    cache.get(_d(2), load)
    assert loads[-1] == _d(2) and cache.size <= 400 and (cache.hits, cache.misses) == (1, 6)


def test_manifest_cache_off_and_oversized_entries_are_not_kept() -> None:
    for cache, size in ((ManifestCache(max_bytes=0), 1), (ManifestCache(max_bytes=1000), 300)):
        calls: list[Digest] = []

        def load(d: Digest, calls: list[Digest] = calls, size: int = size) -> tuple[str, bytes]:
            calls.append(d)
            return "t", bytes(size)

        for _ in range(2):
            cache.get(_d(1), load)
        assert len(calls) == 2 and len(cache) == 0


class LockLosingStore:
    location = "test store"

    def __init__(self) -> None:
        self.lost = False
        self.calls: list[str] = []

    def lock_lost(self) -> bool:
        return self.lost

    def blobs_missing(self, digests: object) -> set[Digest]:
        self.calls.append("blobs_missing")
        return set()

    def version_get(self, repo_id: str) -> str:
        return "read"


def test_every_write_and_every_download_start_is_guarded() -> None:
    assert WRITE_METHODS <= GUARDED and "blobs_missing" in GUARDED


def test_a_lost_lock_stops_the_next_guarded_call_but_not_reads() -> None:
    raw = LockLosingStore()
    flag = StopFlag()
    store = StoppingStore(raw, flag, raw)  # type: ignore[arg-type]  # a stand-in with the methods the proxy calls
    store.blobs_missing([])
    raw.lost = True
    # the stop carries the lost lock's message and hint (Interrupted: no action handler swallows it)
    with pytest.raises(Interrupted, match="was lost") as err:
        store.blobs_missing([])
    assert err.value.hint and flag.is_set() and raw.calls == ["blobs_missing"]
    assert store.version_get("r") == "read"
