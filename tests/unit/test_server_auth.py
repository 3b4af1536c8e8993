"""The server's htpasswd handling: what a file with unusable entries does at startup and
on reload, and that an unknown user costs the same bcrypt work as a known one (no user
enumeration by response time)."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import bcrypt
import pytest

from reconciler.errors import InvalidInput
from reconciler.server import auth
from reconciler.server.auth import Htpasswd
from tests.support.serving import require_binary


def _bcrypt(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def record_checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The hashes every bcrypt check from now on is made against (the checks still run)."""
    checks: list[bytes] = []
    real = bcrypt.checkpw

    def recording(password: bytes, hashed: bytes) -> bool:
        checks.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr("reconciler.server.auth.bcrypt.checkpw", recording)
    return checks


@pytest.mark.parametrize("line", [
    "bob:$apr1$abc$0123456789abcdef012345",       # htpasswd -m (MD5)
    "bob:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=",     # htpasswd -s
    "bob:abJnggxhB/yWI",                          # htpasswd -d (crypt)
    "bob:plaintext",                              # htpasswd -p
    "no-colon-at-all",
], ids=["md5", "sha1", "crypt", "plain", "malformed"])
def test_non_bcrypt_entry_is_an_error_at_startup(tmp_path: Path, line: str) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{_bcrypt('secret')}\n{line}\n")
    with pytest.raises(InvalidInput) as err:
        Htpasswd(path)
    assert f"{path}:2" in err.value.message and "bcrypt" in err.value.message
    assert err.value.hint is not None and "htpasswd -B" in err.value.hint


def test_bad_entry_added_while_running_is_logged_and_skipped(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """The server cannot stop mid-run: the good entries of the new file apply (so a
    removed user loses access at once) and the bad one is reported."""
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{_bcrypt('secret')}\nbob:{_bcrypt('pw')}\n")
    users = Htpasswd(path)
    assert users.check("bob", "pw")
    path.write_text(f"alice:{_bcrypt('secret')}\nbob:{{SHA}}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n")
    os.utime(path, (1, 1))  # a new mtime even within the same clock tick
    with caplog.at_level(logging.ERROR, logger="reconciler.server.auth"):
        assert not users.check("bob", "pw")
        assert users.check("alice", "secret")
    assert any(f"{path}:2" in r.getMessage() for r in caplog.records)


def test_unknown_user_costs_a_bcrypt_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{_bcrypt('secret')}\n")
    users = Htpasswd(path)
    checks = record_checks(monkeypatch)
    assert not users.check("alice", "wrong")
    assert not users.check("mallory", "whatever")
    assert len(checks) == 2  # the unknown user went through bcrypt too
    assert checks[1].startswith(b"$2")


def test_password_longer_than_72_bytes_works_as_htpasswd_made_it(tmp_path: Path) -> None:
    """htpasswd -B hashes only the first 72 bytes of a password (bcrypt's limit); the
    bcrypt module refuses longer input outright, which locked such users out."""
    binary = require_binary("htpasswd", "apache2-utils")
    path = tmp_path / "htpasswd"
    long_password = "correct-horse-battery-staple-" * 4  # 116 bytes: a generated token or passphrase
    subprocess.run([binary, "-bcB", "-C", "4", str(path), "robot", long_password], check=True,
                   capture_output=True, timeout=30)
    users = Htpasswd(path)
    assert users.check("robot", long_password)
    assert not users.check("robot", long_password[:71])


def test_deleting_the_htpasswd_file_revokes_access(tmp_path: Path) -> None:
    """Removing the user list must not leave its last users logged in forever; when a
    file appears again it applies."""
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{_bcrypt('secret')}\n")
    users = Htpasswd(path)
    assert users.check("alice", "secret")
    path.unlink()
    assert not users.check("alice", "secret")
    path.write_text(f"alice:{_bcrypt('secret')}\n")
    assert users.check("alice", "secret")


def test_an_unknown_user_is_checked_at_the_files_highest_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Users' costs differ (cost 4 and cost 6): an unknown name must cost what the most
    expensive real one costs, or response times tell which names exist (before: the
    first user's hash, 3 ms against 251 ms for a cost-12 user)."""
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{_bcrypt('secret')}\nbob:{bcrypt.hashpw(b'pw', bcrypt.gensalt(6)).decode()}\n")
    users = Htpasswd(path)
    checked = record_checks(monkeypatch)
    assert not users.check("mallory", "whatever")
    assert not users.check("", "x")
    assert [h[:7] for h in checked] == [b"$2b$06$", b"$2b$06$"]
    # it is a real bcrypt hash that no password matches, not an error that returns early
    assert bcrypt.checkpw(b"", checked[0]) is False and auth.dummy_hash(6) == checked[0]
