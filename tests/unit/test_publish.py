"""Publication: defaults, unique names, rollback, unpublish, and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict

import pytest

from reconciler.errors import Conflict, NameInvalid, NotFound
from reconciler.ops import publish as ops
from reconciler.store.protocol import Store
from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.imagegen import build_image
from tests.support.serving import commit_tags


@pytest.fixture
def two_versions(store: Store) -> Store:
    commit_tags(store, "web", {"v1": build_image("a")})
    commit_tags(store, "web", {"v1": build_image("b")})
    return store


def test_publish_defaults_to_repo_id_and_latest(two_versions: Store) -> None:
    repo = ops.publish(two_versions, "web")
    assert (repo.publish_name, repo.published_version, repo.protected) == ("web", 2, False)
    pub = two_versions.publication_get("web")
    assert pub is not None and (pub.repo_id, pub.version) == ("web", 2)


def test_publish_keeps_stored_name_and_flag(two_versions: Store) -> None:
    ops.publish(two_versions, "web", name="team/web", version=1, protected=True)
    repo = ops.publish(two_versions, "web")  # no options: same name, same flag, latest version
    assert (repo.publish_name, repo.published_version, repo.protected) == ("team/web", 2, True)
    assert ops.publish(two_versions, "web", protected=False).protected is False


class PublishArgs(TypedDict, total=False):
    name: str
    version: int


@pytest.mark.parametrize("kwargs,error", [
    ({"name": "Team/Web"}, NameInvalid),
    ({"name": "a//b"}, NameInvalid),
    ({"name": "../x"}, NameInvalid),
    ({"version": 7}, NotFound),
])
def test_publish_refuses_bad_input(two_versions: Store, kwargs: PublishArgs, error: type[Exception]) -> None:
    with pytest.raises(error):
        ops.publish(two_versions, "web", **kwargs)
    assert two_versions.repository_get("web").published_version is None


def test_repo_id_that_is_no_valid_name_needs_name(store: Store) -> None:
    commit_tags(store, "Web_App", {"v1": build_image("a")})
    with pytest.raises(NameInvalid, match="not a valid publish name") as exc:
        ops.publish(store, "Web_App")
    assert "--name" in (exc.value.hint or "")


def test_publish_names_are_unique(two_versions: Store) -> None:
    commit_tags(two_versions, "other", {"v1": build_image("c")})
    ops.publish(two_versions, "web", name="shared")
    with pytest.raises(Conflict, match="already used by repository 'web'"):
        ops.publish(two_versions, "other", name="shared")


def test_rollback_and_unpublish(two_versions: Store) -> None:
    with pytest.raises(Conflict, match="not published"):
        ops.rollback(two_versions, "web", to=1)
    ops.publish(two_versions, "web", name="team/web", protected=True)
    repo = ops.rollback(two_versions, "web", to=1)
    assert (repo.publish_name, repo.published_version, repo.protected) == ("team/web", 1, True)
    repo = ops.unpublish(two_versions, "web")
    assert repo.published_version is None and repo.publish_name == "team/web"
    assert two_versions.publication_get("team/web") is None


def test_cli_publish_rollback_unpublish(run_cli: RunCli, tmp_path: Path) -> None:
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


def test_publications_switch_swaps_two_names_in_one_transaction(store: Store) -> None:
    from reconciler.model.repository import PublicationChange

    commit_tags(store, "blue", {"v1": build_image("a")})
    commit_tags(store, "green", {"v1": build_image("b")})
    ops.publish(store, "blue", name="prod/live")
    ops.publish(store, "green", name="prod/next", protected=True)
    before = store.generation()
    ops.switch(store, [PublicationChange("blue", "prod/next", 1), PublicationChange("green", "prod/live", 1, True)])
    live, nxt = store.publication_get("prod/live"), store.publication_get("prod/next")
    assert live is not None and (live.repo_id, live.protected) == ("green", True)
    assert nxt is not None and (nxt.repo_id, nxt.protected) == ("blue", False)
    assert store.generation() == before + 1  # one write


def test_publications_switch_never_takes_a_name_from_a_repository_it_does_not_name(store: Store) -> None:
    from reconciler.model.repository import PublicationChange

    commit_tags(store, "a", {"v1": build_image("a")})
    commit_tags(store, "b", {"v1": build_image("b")})
    commit_tags(store, "c", {"v1": build_image("c")})
    ops.publish(store, "a", name="prod/a")
    ops.publish(store, "b", name="prod/b")
    with pytest.raises(Conflict, match="'prod/a' is already used by repository 'a'.*") as caught:
        ops.switch(store, [PublicationChange("b", None), PublicationChange("c", "prod/a", 1)])
    assert "unpublish a --release" in (caught.value.hint or "")
    # nothing of the refused switch happened: b still serves its name
    pub = store.publication_get("prod/b")
    assert pub is not None and pub.repo_id == "b" and store.repository_get("c").publish_name is None


def test_unpublish_release_frees_the_name_for_another_repository(store: Store) -> None:
    commit_tags(store, "old", {"v1": build_image("a")})
    commit_tags(store, "new", {"v1": build_image("b")})
    ops.publish(store, "old", name="prod/app")
    ops.unpublish(store, "old")
    with pytest.raises(Conflict, match="already used by repository 'old'"):  # unpublish keeps it reserved
        ops.publish(store, "new", name="prod/app")
    released = ops.release(store, "old")
    assert (released.publish_name, released.published_version) == (None, None)
    assert ops.publish(store, "new", name="prod/app").publish_name == "prod/app"
