"""Pulls that overlap a publish (issue 20): for a grace period after a publication moves,
the name keeps serving, by digest, the content of the version it pointed at before; tags
resolve in the new version at once. On both store backends (the ``store`` fixture)."""

from __future__ import annotations

import json
import time

import pytest

from reconciler.errors import InvalidInput
from reconciler.server import RegistryApp
from reconciler.store.protocol import Store
from reconciler.store.sql.grace import GRACE_ENV, grace_seconds
from tests.support.backends import sql_backend
from tests.support.imagegen import build_image
from tests.support.serving import commit_tags, wsgi_call

ACCEPT = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}


def _publish_two(store: Store) -> tuple[int, int]:
    old = build_image("grace-old", layers=2)
    new = build_image("grace-new", layers=1)
    v1 = commit_tags(store, "app", {"latest": old})
    store.publish("app", name="team/app", version=v1, protected=False)
    v2 = commit_tags(store, "app", {"latest": new})
    return v1, v2


def test_a_moved_publication_keeps_its_old_version_for_the_grace_period(store: Store) -> None:
    v1, v2 = _publish_two(store)
    assert store.grace_versions("team/app") == []
    store.publish("app", name="team/app", version=v2, protected=False)
    assert store.grace_versions("team/app") == [("app", v1)]
    assert store.versions_pinned() == {"app": {v1, v2}}  # retention and gc must keep both
    store.publish("app", name="team/app", version=v2, protected=False)  # no move: nothing new
    assert store.grace_versions("team/app") == [("app", v1)]


def test_the_grace_period_ends(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GRACE_ENV, "0.3")
    v1, v2 = _publish_two(store)
    store.publish("app", name="team/app", version=v2, protected=False)
    assert store.grace_versions("team/app") == [("app", v1)]
    time.sleep(0.4)
    assert store.grace_versions("team/app") == []
    assert store.versions_pinned() == {"app": {v2}}


def test_no_grace_when_set_to_zero_or_after_a_repository_is_deleted(store: Store,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    v1, v2 = _publish_two(store)
    monkeypatch.setenv(GRACE_ENV, "0")
    store.publish("app", name="team/app", version=v2, protected=False)
    assert store.grace_versions("team/app") == []
    monkeypatch.delenv(GRACE_ENV)
    store.publish("app", name="team/app", version=v1, protected=False)  # a rollback is a move too
    assert store.grace_versions("team/app") == [("app", v2)]
    store.repository_delete("app")
    assert store.grace_versions("team/app") == [] and store.versions_pinned() == {}


@pytest.mark.parametrize("value", ["soon", "-5", "nan"])
def test_a_bad_grace_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(GRACE_ENV, value)
    with pytest.raises(InvalidInput, match=GRACE_ENV) as err:
        grace_seconds()
    assert err.value.hint


def test_a_client_mid_pull_across_a_publish_gets_the_old_layers(store: Store,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The trial's case: a client fetched ``latest``'s manifest, a mirror apply published a
    version without those layers, and the client then asked for them: 404 BLOB_UNKNOWN."""
    old = build_image("pull-old", layers=2)
    new = build_image("pull-new", layers=1)
    v1 = commit_tags(store, "app", {"latest": old})
    store.publish("app", name="team/app", version=v1, protected=False)
    app = RegistryApp(lambda: store)
    status, headers, raw = wsgi_call(app, "GET", "/v2/team/app/manifests/latest", headers=ACCEPT)
    assert status == 200 and headers["Docker-Content-Digest"] == str(old.digest)

    v2 = commit_tags(store, "app", {"latest": new})  # the apply: the new version drops the old layers
    store.publish("app", name="team/app", version=v2, protected=False)
    for desc in json.loads(raw)["layers"]:
        for method in ("GET", "HEAD"):
            status, headers, body = wsgi_call(app, method, f"/v2/team/app/blobs/{desc['digest']}")
            assert status == 200, (method, desc["digest"], body)
            assert int(headers["Content-Length"]) == desc["size"]
    assert wsgi_call(app, "GET", f"/v2/team/app/manifests/{old.digest}", headers=ACCEPT)[0] == 200
    # tags resolve in the new version at once
    status, headers, _ = wsgi_call(app, "GET", "/v2/team/app/manifests/latest", headers=ACCEPT)
    assert status == 200 and headers["Docker-Content-Digest"] == str(new.digest)

    # after the grace period, the old content is gone from this name
    monkeypatch.setenv(GRACE_ENV, "0")
    v3 = commit_tags(store, "app", {"latest": new, "again": new})
    store.publish("app", name="team/app", version=v3, protected=False)
    with sql_backend(store)._write() as conn:  # the grace of v1 ran out
        conn.execute("UPDATE publication_history SET serve_until = 0")
    status, _, body = wsgi_call(app, "GET", f"/v2/team/app/blobs/{old.manifest.layers[0].digest}")
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "BLOB_UNKNOWN"
    # and a name that is unpublished serves nothing, grace or not
    store.unpublish("app")
    assert wsgi_call(app, "GET", f"/v2/team/app/blobs/{new.manifest.layers[0].digest}")[0] == 404
