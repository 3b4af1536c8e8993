"""``ReadView.publication_tag`` on every store backend: the publication under a name and
what a tag points at in its *published* version, read in one statement (what a manifest
GET by tag asks the store; ``reconciler/server/app.py``)."""

from __future__ import annotations

from reconciler.store.protocol import Store
from tests.support.imagegen import build_image
from tests.support.serving import commit_tags


def test_the_tag_resolves_in_the_published_version_not_the_latest(store: Store) -> None:
    one, two = build_image("web-1", payload=64), build_image("web-2", payload=64)
    commit_tags(store, "web", {"latest": one, "old": one})  # version 1
    commit_tags(store, "web", {"latest": two})  # version 2: latest moved, old gone
    store.publish("web", name="team/web", version=1, protected=True)

    found = store.publication_tag("team/web", "latest")
    assert found is not None
    pub, digest = found
    assert pub == store.publication_get("team/web")
    assert (pub.repo_id, pub.version, pub.protected) == ("web", 1, True)
    assert digest == one.digest  # version 1's, although version 2 moved the tag
    assert store.publication_tag("team/web", "old") == (pub, one.digest)
    assert store.publication_tag("team/web", "missing") == (pub, None)

    store.publish("web", name="team/web", version=2, protected=False)
    pub2 = store.publication_get("team/web")
    assert store.publication_tag("team/web", "latest") == (pub2, two.digest)
    assert store.publication_tag("team/web", "old") == (pub2, None)  # removed in version 2
    for tag in ("latest", "old", "missing"):  # the same answers as the two lookups it replaces
        found = store.publication_tag("team/web", tag)
        assert pub2 is not None and found is not None
        assert found[1] == store.version_tag("web", pub2.version, tag)


def test_nothing_for_a_name_that_is_not_published(store: Store) -> None:
    commit_tags(store, "web", {"latest": build_image("web-1", payload=64)})
    assert store.publication_tag("web", "latest") is None  # a repository id is not a published name
    store.publish("web", name="team/web", version=1, protected=False)
    assert store.publication_tag("team/web", "latest") is not None
    store.unpublish("web")
    assert store.publication_tag("team/web", "latest") is None
