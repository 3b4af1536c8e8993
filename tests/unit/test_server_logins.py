"""Failed logins are throttled per client address and per user name (429 with
``Retry-After``, no bcrypt), remembered logins never are, concurrent bcrypt checks are
bounded, and a refused login is logged with the user name tried. Through both WSGI apps
(the registry and Crane mode) with a fake clock; bcrypt is real (cost 4)."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from reconciler.server import RegistryApp
from reconciler.server.auth import Htpasswd
from reconciler.server.logins import ADDRESS_RATE, LoginGuard
from reconciler.server.throttle import Buckets, Rate
from reconciler.store.sqlite import SQLiteStore
from tests.support.serving import wsgi_call


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def users(tmp_path: Path) -> Htpasswd:
    path = tmp_path / "htpasswd"
    path.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n"
                            for u, p in [("alice", "secret"), ("bob", "hunter2")]))
    return Htpasswd(path)


def test_buckets_allow_a_burst_then_one_per_interval() -> None:
    clock = Clock()
    buckets = Buckets(Rate(capacity=3, per_second=0.5), clock=clock)
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 2.0]
    assert buckets.wait("k") == 2.0 and buckets.wait("other") == 0.0
    clock.now += 2
    assert buckets.wait("k") == 0.0 and buckets.take("k") == 2.0
    clock.now += 60  # refilled: forgotten at the next failure of anyone
    buckets.take("other")
    assert len(buckets) == 1


def test_buckets_keep_at_most_max_keys() -> None:
    buckets = Buckets(Rate(capacity=1, per_second=0.001), max_keys=100, clock=Clock())
    for i in range(1000):
        buckets.take(f"10.0.{i // 256}.{i % 256}")
    assert len(buckets) == 100


@pytest.fixture
def registry(tmp_path: Path, users: Htpasswd) -> Any:
    SQLiteStore(tmp_path / "store").close()
    app = RegistryApp(lambda: SQLiteStore(tmp_path / "store"), htpasswd=users)
    clock = Clock()
    assert app.logins is not None
    app.logins = LoginGuard(users, clock=clock)
    app.clock = clock  # type: ignore[attr-defined]  # on purpose: the tests reach the fake clock through the app
    yield app
    app.close()


def get(app: Any, auth_header: str | None, address: str = "192.0.2.1", path: str = "/v2/") -> tuple[int, dict[str, str]]:
    status, headers, _ = wsgi_call(app, "GET", path, headers={"Authorization": auth_header} if auth_header else {},
                                   remote_addr=address)
    return status, headers


def test_an_address_that_keeps_failing_gets_429_without_a_bcrypt_check(
        registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    statuses = [get(registry, basic("alice", f"guess{i}"))[0] for i in range(ADDRESS_RATE.capacity)]
    assert statuses == [401] * ADDRESS_RATE.capacity
    checks: list[bytes] = []
    real = bcrypt.checkpw

    def counted(password: bytes, hashed: bytes) -> bool:
        checks.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr("reconciler.server.auth.bcrypt.checkpw", counted)
    status, headers = get(registry, basic("bob", "guess"))
    assert status == 429 and headers["Retry-After"] == "5" and checks == []
    # even the right password waits: a new login from a throttled address is not checked
    assert get(registry, basic("bob", "hunter2"))[0] == 429
    # other addresses are not affected, and the address gets a try again later
    assert get(registry, basic("bob", "hunter2"), address="192.0.2.2")[0] == 200
    registry.clock.now += 5
    assert get(registry, basic("carol", "x"))[0] == 401
    assert get(registry, basic("carol", "x"))[0] == 429


def test_a_user_name_guessed_from_many_addresses_is_throttled_but_remembered_logins_go_on(registry: Any) -> None:
    assert get(registry, basic("alice", "secret"), address="198.51.100.1")[0] == 200  # alice's own client
    for i in range(10):
        assert get(registry, basic("alice", f"guess{i}"), address=f"203.0.113.{i}")[0] == 401
    assert get(registry, basic("alice", "guess"), address="203.0.113.99")[0] == 429
    # her password from anywhere else is a new login and waits (else guesses from many
    # addresses could be compared with the remembered password for free) ...
    assert get(registry, basic("alice", "secret"), address="203.0.113.98")[0] == 429
    # ... but her own client, which logged in from its address before, is not locked out
    assert get(registry, basic("alice", "secret"), address="198.51.100.1")[0] == 200
    assert get(registry, basic("bob", "hunter2"), address="203.0.113.97")[0] == 200   # nor other users


def test_unknown_user_names_are_throttled_like_real_ones(registry: Any) -> None:
    """A 429 must not tell an attacker that a name exists."""
    def throttled_after(user: str) -> int:
        for i in range(1, 30):
            if get(registry, basic(user, "x"), address=f"10.{len(user)}.0.{i}")[0] == 429:
                return i
        return -1

    assert throttled_after("bob") == throttled_after("nobody") == 11


def test_concurrent_bcrypt_checks_are_bounded(users: Htpasswd, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, running, calls = threading.Event(), threading.Semaphore(0), []
    real = bcrypt.checkpw

    def slow(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        running.release()
        gate.wait(10)
        return real(password, hashed)

    monkeypatch.setattr("reconciler.server.auth.bcrypt.checkpw", slow)
    guard = LoginGuard(users, slots=2)
    results: dict[str, Any] = {}

    def login(name: str, user: str, password: str) -> Callable[[], None]:
        return lambda: results.__setitem__(name, guard.check(user, password, name))

    threads = [threading.Thread(target=login(f"10.0.0.{i}", "alice", f"wrong{i}")) for i in range(2)]
    threads += [threading.Thread(target=login(f"10.0.1.{i}", "bob", "hunter2")) for i in range(3)]
    for t in threads[:2]:
        t.start()
    assert running.acquire(timeout=5) and running.acquire(timeout=5)  # both slots taken
    third = guard.check("bob", "other", "10.0.2.1")
    assert third.user is None and third.retry_after == 1  # answered at once, no check
    gate.set()
    for t in threads[:2]:
        t.join(10)
    # identical credentials on several connections at once share one check
    gate.clear()
    for t in threads[2:]:
        t.start()
    assert running.acquire(timeout=5)
    gate.set()
    for t in threads[2:]:
        t.join(10)
    assert [results[f"10.0.1.{i}"].user for i in range(3)] == ["bob"] * 3
    assert calls.count(b"hunter2") == 1 and len(calls) == 3


def test_a_refused_login_is_logged_with_the_user_name_tried(registry: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="reconciler.server.access"):
        get(registry, basic("mallory the intruder", "x"))
        get(registry, basic("alice", "secret"))
        get(registry, None)
    lines = [r.getMessage() for r in caplog.records if r.name == "reconciler.server.access"]
    assert lines[0].startswith("192.0.2.1 - mallory\\x20the\\x20intruder [") and '" 401 ' in lines[0]
    assert lines[1].startswith("192.0.2.1 - alice [") and '" 200 ' in lines[1]
    assert lines[2].startswith("192.0.2.1 - - [") and '" 401 ' in lines[2]


def test_crane_mode_throttles_too(tmp_path: Path, users: Htpasswd) -> None:
    from reconciler.server.crane import CraneApp, CraneConfig

    (tmp_path / "data").mkdir()
    app = CraneApp(CraneConfig(data_dir=str(tmp_path / "data")), htpasswd=users)
    statuses = [get(app, basic("alice", f"guess{i}"))[0] for i in range(11)]
    assert statuses == [200] * 10 + [429]  # Crane never challenged: a wrong password is anonymous
    status, headers = get(app, basic("alice", "guess"))
    assert status == 429 and int(headers["Retry-After"]) >= 1
