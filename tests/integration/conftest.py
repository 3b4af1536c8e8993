"""Fixtures for integration tests: real distribution registries on loopback.

Session-scoped (starting one costs ~0.3 s): ``registry`` (anonymous), ``basic_registry``
(htpasswd), ``token_registry`` (Bearer tokens from our own token server), and
``paging_registry`` (a proxy in front of ``registry`` that paginates tag lists, which
distribution 2.8 itself does not). Each test gets a unique repository name from
``repo_name`` so tests sharing a registry never see each other's tags.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.quirkproxy import QuirkProxy
from tests.support.registry import RunningRegistry, start_registry
from tests.support.s3server import S3Server, start_s3_server
from tests.support.serving import stop
from tests.support.tagproxy import TagPagingProxy

_counter = itertools.count()
P = TypeVar("P", bound=FaultProxy)


def _started(tmp_path_factory: pytest.TempPathFactory, auth: str) -> Iterator[RunningRegistry]:
    reg = start_registry(Path(tmp_path_factory.mktemp(f"registry-{auth}")), auth=auth)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """An anonymous registry (push and pull without credentials)."""
    yield from _started(tmp_path_factory, "none")


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A registry behind htpasswd Basic auth; ``.credentials`` is (user, password)."""
    yield from _started(tmp_path_factory, "basic")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A registry with Bearer token auth; ``.token_server`` counts token requests.
    Anonymous clients get pull tokens; ``.credentials`` get push and delete too."""
    yield from _started(tmp_path_factory, "token")


@pytest.fixture(scope="session")
def paging_registry(registry: RunningRegistry) -> Iterator[TagPagingProxy]:
    """``registry`` behind a proxy that pages tag lists (honours ``n``; 3 per page when the
    client sends no ``n``). Push through ``registry.url``, pull through ``.url``."""
    proxy = TagPagingProxy(registry.url, default_page=3).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A repository name unique to this test, e.g. ``t/test-tag-list-pages-7``."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-")
    return f"t/{stem}-{next(_counter)}"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's standalone S3 server on a free loopback port, with bucket ``reconciler-test``."""
    server = start_s3_server(Path(tmp_path_factory.mktemp("s3")))
    try:
        yield server
    finally:
        stop(server.proc)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """``s3_server`` with its AWS variables set in this process (boto3 reads them)."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


@pytest.fixture
def proxy(registry: RunningRegistry) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's registry (tests/support/faultproxy.py)."""
    yield from _proxied(FaultProxy(registry.url))


@pytest.fixture
def quirks(registry: RunningRegistry) -> Iterator[QuirkProxy]:
    """The session's registry with real registries' quirks on demand (tests/support/quirkproxy.py)."""
    yield from _proxied(QuirkProxy(registry.url))


def _proxied(p: P) -> Iterator[P]:
    p.start()
    try:
        yield p
    finally:
        p.stop()
