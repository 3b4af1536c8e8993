"""Publication: defaults, unique names, rollback, unpublish, and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import Conflict, NameInvalid, NotFound
from reconciler.ops import publish as ops
from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import build_image
from tests.support.serving import commit_tags


@pytest.fixture
def two_versions(store):  # type: ignore[no-untyped-def]
    commit_tags(store, "web", {"v1": build_image("a")})
    commit_tags(store, "web", {"v1": build_image("b")})
    return store


def test_publish_defaults_to_repo_id_and_latest(two_versions) -> None:  # type: ignore[no-untyped-def]
    repo = ops.publish(two_versions, "web")
    assert (repo.publish_name, repo.published_version, repo.protected) == ("web", 2, False)
    pub = two_versions.publication_get("web")
    assert pub is not None and (pub.repo_id, pub.version) == ("web", 2)


def test_publish_keeps_stored_name_and_flag(two_versions) -> None:  # type: ignore[no-untyped-def]
    ops.publish(two_versions, "web", name="team/web", version=1, protected=True)
    repo = ops.publish(two_versions, "web")  # no options: same name, same flag, latest version
    assert (repo.publish_name, repo.published_version, repo.protected) == ("team/web", 2, True)
    assert ops.publish(two_versions, "web", protected=False).protected is False


@pytest.mark.parametrize("kwargs,error", [
    ({"name": "Team/Web"}, NameInvalid),
    ({"name": "a//b"}, NameInvalid),
    ({"name": "../x"}, NameInvalid),
    ({"version": 7}, NotFound),
])
def test_publish_refuses_bad_input(two_versions, kwargs, error) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error):
        ops.publish(two_versions, "web", **kwargs)
    assert two_versions.repository_get("web").published_version is None


def test_repo_id_that_is_no_valid_name_needs_name(store) -> None:  # type: ignore[no-untyped-def]
    commit_tags(store, "Web_App", {"v1": build_image("a")})
    with pytest.raises(NameInvalid, match="not a valid publish name") as exc:
        ops.publish(store, "Web_App")
    assert "--name" in (exc.value.hint or "")


def test_publish_names_are_unique(two_versions) -> None:  # type: ignore[no-untyped-def]
    commit_tags(two_versions, "other", {"v1": build_image("c")})
    ops.publish(two_versions, "web", name="shared")
    with pytest.raises(Conflict, match="already used by repository 'web'"):
        ops.publish(two_versions, "other", name="shared")


def test_rollback_and_unpublish(two_versions) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Conflict, match="not published"):
        ops.rollback(two_versions, "web", to=1)
    ops.publish(two_versions, "web", name="team/web", protected=True)
    repo = ops.rollback(two_versions, "web", to=1)
    assert (repo.publish_name, repo.published_version, repo.protected) == ("team/web", 1, True)
    repo = ops.unpublish(two_versions, "web")
    assert repo.published_version is None and repo.publish_name == "team/web"
    assert two_versions.publication_get("team/web") is None


def test_cli_publish_rollback_unpublish(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "store"
    s = SQLiteStore(path)
    commit_tags(s, "web", {"v1": build_image("a")})
    commit_tags(s, "web", {"v1": build_image("b")})
    s.close()
    out = run_cli("publish", "web", "--name", "team/web", "--protected", "--json", store=path, check=True)
    assert json.loads(out.stdout) == {"id": "web", "publish_name": "team/web", "published_version": 2,
                                      "protected": True, "latest_version": 2}
    out = run_cli("repo", "rollback", "web", "--to", "1", store=path, check=True)
    assert out.stdout.strip() == "rolled back web version 1 as team/web (protected)"
    out = run_cli("unpublish", "web", store=path, check=True)
    assert "unpublished web" in out.stdout
    bad = run_cli("publish", "web", "--name", "Bad Name", store=path)
    assert bad.returncode == 1 and "error: invalid publish name" in bad.stderr and "hint:" in bad.stderr
