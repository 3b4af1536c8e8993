"""Upstream names people write that a registry would answer with a bare 404 (or, on some
registries, an empty tag list): upper case, a ``:tag`` or ``@digest`` suffix, a registry
host in front. ``reconciler sync --upstream-name``, ``repo create`` and repos.yaml refuse
each with the name it most likely meant, before any request is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.desired import check_text
from reconciler.errors import NameInvalid
from reconciler.model.reference import check_upstream_name

HUB = "https://registry-1.docker.io"
DIGEST = "sha256:" + "ab" * 32

# (name, feed, the suggestion, what else the hint says)
WRONG = {
    "upper-case": ("Library/BusyBox", HUB, "library/busybox", "upper-case letters"),
    "tag-suffix": ("library/busybox:1.36", HUB, "library/busybox", "tag filter: include '1.36'"),
    "digest-suffix": (f"library/busybox@{DIGEST}", HUB, "library/busybox", "pin a digest with pins"),
    "hub-host-prefix": ("docker.io/library/busybox", HUB, "library/busybox", "the registry host goes in the feed"),
    "everything-at-once": (f"Docker.io/Library/Busybox:latest@{DIGEST}", HUB, "library/busybox", "feed"),
    "other-public-host": ("ghcr.io/acme/tool", HUB, "acme/tool", "https://ghcr.io"),
    "the-feeds-own-host": ("registry.example.com:5000/team/app", "https://registry.example.com:5000", "team/app",
                           "feed"),
    "localhost": ("localhost/app", "http://127.0.0.1:5000", "app", "feed"),
}


@pytest.mark.parametrize("case", list(WRONG), ids=list(WRONG))
def test_a_wrong_upstream_name_is_refused_with_the_name_it_meant(case: str) -> None:
    name, feed, meant, advice = WRONG[case]
    with pytest.raises(NameInvalid) as info:
        check_upstream_name(name, feed)
    assert info.value.message.startswith(f"invalid upstream name {name!r}: ")
    assert info.value.hint is not None and f"did you mean {meant!r}?" in info.value.hint
    assert advice in info.value.message + info.value.hint


@pytest.mark.parametrize("name", ["library/busybox", "busybox", "team/sub/app", "my.team/app", "a-b_c.d/e__f"])
def test_good_names_pass(name: str) -> None:
    assert check_upstream_name(name, HUB) == name


@pytest.mark.parametrize("case", ["upper-case", "tag-suffix", "hub-host-prefix"])
def test_sync_and_repo_create_refuse_before_asking_the_registry(case: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Before, these ended in ``HTTP 404: not found`` from the registry (the feed here is
    unreachable: any request would fail differently)."""
    name, _, meant, _ = WRONG[case]
    store = str(tmp_path / "store")
    for args in (["sync", "app", "--feed", "http://127.0.0.1:9", "--upstream-name", name],
                 ["repo", "create", "app", "--feed", "http://127.0.0.1:9", "--upstream-name", name]):
        with pytest.raises(SystemExit) as exited:
            main(["--store", store, *args])
        assert exited.value.code == 1
        err = capsys.readouterr().err
        assert f"error: invalid upstream name {name!r}" in err and f"did you mean {meant!r}?" in err, err
        assert "127.0.0.1:9" not in err.split("hint:")[0]  # no request was made
    with pytest.raises(SystemExit):
        main(["--store", store, "repo", "list", "--json"])
    assert capsys.readouterr().out.strip() == "[]"  # and no repository was left behind


@pytest.mark.parametrize("name,message", [
    ("docker.io/library/busybox", "4:20: repositories.web.upstream_name: invalid upstream name "
     "'docker.io/library/busybox': it starts with the registry host 'docker.io' (did you mean 'library/busybox'? "
     "the registry host goes in the feed: https://docker.io)"),
    ("Library/Busybox:1.36", "4:20: repositories.web.upstream_name: invalid upstream name 'Library/Busybox:1.36': "
     "it ends in a tag (:1.36); it has upper-case letters (repository names are lower case) (did you mean "
     "'library/busybox'? tags are chosen with the tag filter: include '1.36')"),
])
def test_repos_yaml_refuses_them_too(name: str, message: str, tmp_path: Path) -> None:
    text = f"version: 1\nrepositories:\n  web:\n    upstream_name: '{name}'\n    feed: {HUB}\n"
    found = [f"{d.line}:{d.column}: {d.path}: {d.message}" for d in check_text(text.encode(), "r.yaml", tmp_path)]
    assert found == [message]
