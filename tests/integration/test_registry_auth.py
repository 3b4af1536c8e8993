"""RegistryClient authentication against real registries: htpasswd Basic auth and Bearer
tokens from our token server (anonymous pull tokens, credentials, per-scope caching)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3.util.connection

from reconciler.errors import ConfigError, RegistryError
from reconciler.model import Digest
from reconciler.model.registry import RegistryConfig
from reconciler.registry.client import RegistryClient
from tests.support.imagegen import build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry

ENV = {"REG_USER": "alice", "REG_PASS": "s3cret-pw", "BAD_PASS": "xyzzy-bad-pw"}


def collect(chunks: Iterator[bytes]) -> bytes:
    return b"".join(chunks)


def _pushed(reg: RunningRegistry, name: str) -> Digest:
    image = build_image(name, layers=1)
    push_image(reg.url, name, image, tags=("v1", "v2"), auth=reg.credentials)
    return image.manifest.layers[0].digest


def test_basic_auth_with_env_credentials(basic_registry: RunningRegistry, repo_name: str) -> None:
    layer = _pushed(basic_registry, repo_name)
    cfg = RegistryConfig(basic_registry.url, username_env="REG_USER", password_env="REG_PASS")
    with RegistryClient(cfg, env=ENV) as c:
        assert sorted(c.tag_list(repo_name)) == ["v1", "v2"]
        assert Digest.of(c.blob_fetch(repo_name, layer, collect)) == layer
        # the ping taught us Basic: later requests send credentials up front, no 401 round trips
        assert c.stats.counts == {"ping": 1, "tags": 1, "blob_get": 1}


@pytest.mark.parametrize("password_env", ["BAD_PASS", None], ids=["wrong-password", "no-credentials"])
def test_basic_auth_refused_says_so(basic_registry: RunningRegistry, repo_name: str, password_env: str | None) -> None:
    _pushed(basic_registry, repo_name)
    cfg = RegistryConfig(basic_registry.url, username_env="REG_USER" if password_env else None,
                         password_env=password_env)
    with RegistryClient(cfg, env=ENV) as c, pytest.raises(RegistryError) as err:
        c.tag_list(repo_name)
    e = err.value
    assert e.status == 401 and not e.temporary
    assert "unauthorized or not found" in str(e) and "credentials" in (e.hint or "")
    assert "s3cret" not in str(e) and "xyzzy" not in str(e)
    # which credentials were refused (where they come from, never the secret), or that none were sent
    if password_env:
        assert str(e).startswith(f"credentials from REG_USER/BAD_PASS were refused by {basic_registry.host}: ")
    else:
        assert str(e).startswith(f"{basic_registry.host} refused anonymous access: ")


def test_basic_auth_from_auth_json(basic_registry: RunningRegistry, repo_name: str, tmp_path: Path) -> None:
    _pushed(basic_registry, repo_name)
    auth_file = tmp_path / "auth.json"
    token = base64.b64encode(b"alice:s3cret-pw").decode()
    auth_file.write_text(json.dumps({"auths": {basic_registry.host: {"auth": token}}}))
    with RegistryClient(RegistryConfig(basic_registry.url, auth_file=str(auth_file))) as c:
        assert sorted(c.tag_list(repo_name)) == ["v1", "v2"]


def test_missing_env_variable_is_a_config_error(basic_registry: RunningRegistry) -> None:
    cfg = RegistryConfig(basic_registry.url, username_env="REG_USER", password_env="NOT_SET_ANYWHERE")
    with pytest.raises(ConfigError, match="environment variable NOT_SET_ANYWHERE is not set"):
        RegistryClient(cfg, env=ENV)
    both = RegistryConfig(basic_registry.url, username_env="NO_USER", password_env="NO_PASS")
    with pytest.raises(ConfigError, match="environment variables NO_USER and NO_PASS are not set"):
        RegistryClient(both, env=ENV)


def test_token_auth_anonymous_pull_caches_token_per_scope(token_registry: RunningRegistry, repo_name: str) -> None:
    server = token_registry.token_server
    assert server is not None
    layer = _pushed(token_registry, repo_name)
    other = repo_name + "-other"
    _pushed(token_registry, other)
    before = len(server.requests)
    with RegistryClient(RegistryConfig(token_registry.url)) as c:
        assert sorted(c.tag_list(repo_name)) == ["v1", "v2"]
        head = c.manifest_head(repo_name, "v1")
        assert head is not None and head.digest is not None
        c.manifest_get(repo_name, str(head.digest))
        assert Digest.of(c.blob_fetch(repo_name, layer, collect)) == layer
        assert c.stats.counts["token"] == 1  # one token for four requests on one repository
        c.tag_list(other)  # another repository is another scope: one more token
        assert c.stats.counts["token"] == 2
    got = server.requests[before:]
    assert [(r.scopes, r.user, r.status) for r in got] == [
        ([f"repository:{repo_name}:pull"], None, 200), ([f"repository:{other}:pull"], None, 200)]
    # the token was sent up front after the ping: no 401 round trip per request
    assert c.stats.counts["tags"] == 2 and c.stats.counts["manifest_head"] == 1


def test_token_auth_with_credentials_and_wrong_password(token_registry: RunningRegistry, repo_name: str) -> None:
    server = token_registry.token_server
    assert server is not None
    _pushed(token_registry, repo_name)
    before = len(server.requests)
    with RegistryClient(RegistryConfig(token_registry.url, username_env="REG_USER", password_env="REG_PASS"),
                        env=ENV) as c:
        assert sorted(c.tag_list(repo_name)) == ["v1", "v2"]
    assert [r.user for r in server.requests[before:]] == ["alice"]
    with RegistryClient(RegistryConfig(token_registry.url, username_env="REG_USER", password_env="BAD_PASS"),
                        env=ENV) as c, pytest.raises(RegistryError) as err:
        c.tag_list(repo_name)
    assert err.value.status == 401 and "token service rejected" in (err.value.hint or "")
    assert err.value.url.startswith(server.realm)
    assert f"credentials from REG_USER/BAD_PASS were refused by {token_registry.host}" in str(err.value)
    assert "xyzzy" not in str(err.value)


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_challenges_and_heads_keep_one_connection_to_the_registry(
        basic_registry: RunningRegistry, token_registry: RunningRegistry, repo_name: str, kind: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The ping's 401 and every HEAD leave the connection reusable: one TCP (TLS, in real
    life) connection to the registry for the whole run, whatever the auth scheme."""
    registry = basic_registry if kind == "basic" else token_registry
    _pushed(registry, repo_name)
    connects: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def counting(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connects.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    cfg = RegistryConfig(registry.url, username_env="REG_USER", password_env="REG_PASS")
    with RegistryClient(cfg, env=ENV) as c:
        for _ in range(5):
            for tag in ("v1", "v2"):
                head = c.manifest_head(repo_name, tag)
                assert head is not None and head.digest is not None
        assert sorted(c.tag_list(repo_name)) == ["v1", "v2"]
        assert c.stats.counts["manifest_head"] == 10
    port = int(registry.url.rsplit(":", 1)[1])
    assert [a for a in connects if a[1] == port] == [("127.0.0.1", port)]
