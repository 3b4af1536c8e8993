"""The access file of ``reconciler serve --access``: what its glob patterns match, that
access is the union of the matching rules, and that every mistake in the file is an
error naming FILE:LINE (in-process, and as the exit status of ``reconciler serve``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest

from reconciler.errors import InvalidInput
from reconciler.server.access import AccessRules, Decision, compile_pattern, decide, load_access
from tests.support.serving import REPO_ROOT

USERS = frozenset({"alice", "bob", "carol", "deploy-bot", "1001"})


@pytest.mark.parametrize(("pattern", "matches", "misses"), [
    ("prod/app", ["prod/app"], ["prod/app2", "prod", "prod/app/x", "x/prod/app"]),
    ("prod/*", ["prod/app", "prod/a.b-c_d"], ["prod", "prod/app/x", "production/app", "x/prod/app"]),
    ("prod-*/app", ["prod-eu/app", "prod-/app"], ["prod/app", "prod-eu/x/app"]),
    ("*", ["busybox"], ["library/busybox"]),
    ("team-a/**", ["team-a/x", "team-a/x/y/z"], ["team-a", "team-ab/x", "x/team-a/y"]),
    ("**/base", ["base", "x/base", "x/y/base"], ["base2", "x/base/y", "xbase"]),
    ("a/**/b", ["a/b", "a/x/b", "a/x/y/b"], ["a/bb", "ab", "a/x/c"]),
    ("**", ["a", "a/b/c"], []),
    ("*/*-dev", ["team/app-dev"], ["team/x/app-dev", "app-dev"]),
], ids=["literal", "star-one-component", "star-inside-component", "star-alone", "doublestar-trailing",
        "doublestar-leading", "doublestar-middle", "doublestar-alone", "stars"])
def test_glob_semantics(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = compile_pattern(pattern)
    assert [n for n in matches if not regex.fullmatch(n)] == []
    assert [n for n in misses if regex.fullmatch(n)] == []


def _rules(tmp_path: Path, text: str) -> AccessRules:
    path = tmp_path / "access.yaml"
    path.write_text(text)
    return load_access(path, USERS)


def test_access_is_the_union_of_matching_rules(tmp_path: Path) -> None:
    rules = _rules(tmp_path, "repositories:\n  prod/*: [alice, deploy-bot]\n  prod/app: [bob]\n"
                             "  '**/base': [carol]\n  ids/*: [1001]\n")
    assert rules.allows("alice", "prod/app") and rules.allows("bob", "prod/app")  # both rules grant
    assert not rules.allows("bob", "prod/db")
    assert rules.allows("carol", "prod/base") and not rules.allows("carol", "prod/app")
    assert rules.allows("1001", "ids/x")  # a numeric user name is a name, not a number


@pytest.mark.parametrize(("protected", "user", "decision"), [
    (False, None, Decision.ALLOW),
    (False, "carol", Decision.ALLOW),
    (True, None, Decision.ANONYMOUS),
    (True, "alice", Decision.ALLOW),
    (True, "carol", Decision.HIDDEN),
], ids=["public-anonymous", "public-ungranted-user", "protected-anonymous", "protected-granted",
        "protected-ungranted"])
def test_decide(tmp_path: Path, protected: bool, user: str | None, decision: Decision) -> None:
    rules = _rules(tmp_path, "repositories:\n  prod/*: [alice]\n")
    assert decide("prod/app", protected, user, rules) is decision


def test_without_access_file_every_user_reads_every_protected_name() -> None:
    assert decide("prod/app", True, "carol", None) is Decision.ALLOW
    assert decide("prod/app", True, None, None) is Decision.ANONYMOUS


def test_empty_repositories_grants_nothing(tmp_path: Path) -> None:
    rules = _rules(tmp_path, "repositories:\n")
    assert decide("prod/app", True, "alice", rules) is Decision.HIDDEN


BAD_FILES = {
    "bad-yaml": ("repositories:\n  prod/*: [alice\n  x: [bob]\n", 3, "not valid YAML"),
    "not-a-mapping": ("- alice\n", 1, "expected a mapping"),
    "empty-file": ("", 1, "expected a mapping"),
    "unknown-top-key": ("repositories: {}\nusers: [alice]\n", 2, "unknown key 'users'"),
    "no-repositories": ("# nothing\n{}\n", 1, "no 'repositories' key"),
    "unknown-user": ("repositories:\n  prod/*: [alice]\n  team-b/*:\n    - bob\n    - bobb\n", 5,
                     "user 'bobb' is not in"),
    "users-not-a-list": ("repositories:\n  prod/*: alice\n", 2, "expected a list of users"),
    "null-user": ("repositories:\n  prod/*: [alice, ~]\n", 2, "a user must be a non-empty name"),
    "upper-case-glob": ("repositories:\n  Prod/*: [alice]\n", 2, "'P'"),
    "question-mark-glob": ("repositories:\n  prod/app?: [alice]\n", 2, "'?'"),
    "doublestar-in-component": ("repositories:\n  prod/app**: [alice]\n", 2, "'**' must be a whole path component"),
    "doublestar-twice": ("repositories:\n  a/**/**: [alice]\n", 2, "'**/**'"),
    "empty-component": ("repositories:\n  prod//app: [alice]\n", 2, "empty path component"),
    "trailing-slash": ("repositories:\n  prod/: [alice]\n", 2, "empty path component"),
    "never-matches": ("repositories:\n  prod/-app: [alice]\n", 2, "can never match"),
    "duplicate-pattern": ("repositories:\n  prod/*: [alice]\n  prod/*: [bob]\n", 3, "appears twice (first on line 2)"),
    "pattern-not-string": ("repositories:\n  [a]: [alice]\n", 2, "a pattern must be a string"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_mistakes_are_errors_naming_file_and_line(tmp_path: Path, case: str) -> None:
    text, line, what = BAD_FILES[case]
    path = tmp_path / "access.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as err:
        load_access(path, USERS)
    assert err.value.message.startswith(f"{path}:{line}: "), err.value.message
    assert what in err.value.message
    assert err.value.hint


def test_unknown_user_hint_names_the_htpasswd_file(tmp_path: Path) -> None:
    path = tmp_path / "access.yaml"
    path.write_text("repositories:\n  prod/*: [bobb]\n")
    with pytest.raises(InvalidInput) as err:
        load_access(path, USERS, users_file="/etc/reconciler/htpasswd")
    assert err.value.hint is not None and "htpasswd -B /etc/reconciler/htpasswd bobb" in err.value.hint


SERVE_ERRORS = {
    "bad-yaml": ("repositories:\n  prod/*: [alice\n", ":3: not valid YAML"),
    "unknown-user": ("repositories:\n  prod/*: [alice, mallory]\n", ":2: prod/*: user 'mallory' is not in"),
    "bad-glob": ("repositories:\n  prod/[ab]: [alice]\n", ":2: pattern 'prod/[ab]' has '['"),
}


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pw") / "htpasswd"
    path.write_text("".join(f"{u}:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n" for u in ("alice", "bob")))
    return path


def _serve(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args, "--port", "0"], capture_output=True,
                          text=True, timeout=60, cwd=REPO_ROOT)


@pytest.mark.parametrize("mode", ["store", "crane"])
@pytest.mark.parametrize("case", list(SERVE_ERRORS))
def test_serve_exits_1_naming_file_and_line(tmp_path: Path, htpasswd: Path, case: str, mode: str) -> None:
    text, where = SERVE_ERRORS[case]
    access = tmp_path / "access.yaml"
    access.write_text(text)
    if mode == "store":
        args = ["--store", str(tmp_path / "store"), "serve"]
    else:
        (tmp_path / "app").mkdir()
        args = ["serve", "--crane-data-dir", str(tmp_path / "app")]
    proc = _serve([*args, "--htpasswd", str(htpasswd), "--access", str(access)])
    assert proc.returncode == 1, proc.stderr
    assert f"{access}{where}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_access_without_htpasswd_is_a_usage_error(tmp_path: Path) -> None:
    access = tmp_path / "access.yaml"
    access.write_text("repositories: {}\n")
    proc = _serve(["--store", str(tmp_path / "store"), "serve", "--access", str(access)])
    assert proc.returncode == 2 and "--access needs --htpasswd" in proc.stderr
