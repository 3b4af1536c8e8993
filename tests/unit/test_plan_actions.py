"""The plan's actions as a tagged union: each type keeps the JSON form of the one record it
replaced (the keys, their order, what is left out), and docs/plan-json.md names every
field each type has."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TypedDict

import pytest

from reconciler.model import Digest
from reconciler.plan.actions import (
    BY_OP,
    JSON_KEYS,
    Action,
    BaseAction,
    Change,
    CopyContent,
    CopyTag,
    CreateRepository,
    DeleteRepository,
    Download,
    DropVersions,
    Op,
    PinTag,
    Publish,
    RemoveContent,
    RemoveTag,
    SyncReferrers,
    SyncTag,
    Unpublish,
    UpdateRepository,
    Upload,
    V1Sync,
    V1Upload,
    action_from_json,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plan-json.md"
A, B = Digest.of(b"a"), Digest.of(b"b")


class Head(TypedDict):
    """The fields every action type shares, given to each sample with ``**``."""

    repo: str
    reason: str
    depends_on: tuple[str, ...]


HEAD: Head = {"repo": "web", "reason": "declared in repos.yaml", "depends_on": ("web/create_repository/repository",)}

SAMPLES: list[Action] = [
    CreateRepository(id="web/create_repository/repository", change=Change.CREATE, feed="http://up", upstream_name="lib/web",
                     repo=HEAD["repo"], reason=HEAD["reason"], depends_on=()),
    UpdateRepository(id="web/update_repository/repository", change=Change.UPDATE, feed=None, upstream_name=None, **HEAD),
    DeleteRepository(id="old/delete_repository/repository", change=Change.DELETE, publish_name="team/old",
                     removes={"tags": 2, "blobs": 3}, **HEAD),
    SyncTag(id="web/sync_tag/v1", change=Change.UPDATE, tag="v1", digest=B, old_digest=A, cascade=True,
            download=Download(2, 300, 1), adds={"manifests": 1, "blobs": 2}, removes={"manifests": 1}, **HEAD),
    SyncTag(id="web/sync_tag/v2", change=Change.UPDATE, tag="v2", digest=A, old_origin="pin", **HEAD),
    SyncReferrers(id="web/sync_referrers/v1", change=Change.CREATE, tag="v1", digest=B, digests=(A,),
                  referrer_tags={f"sha256-{B.hex}.sig": str(A)}, artifact_types=("application/spdx+json",),
                  download=Download(1, 20, 1), adds={"manifests": 1, "tags": 1}, **HEAD),
    Upload(id="web/upload/f.tar", change=Change.CREATE, file="/x/f.tar", file_digest="sha256:" + "0" * 64, tag="1.0",
           digest=A, upload_tags={"1.0": str(A)}, adds={"blobs": 1}, **HEAD),
    Upload(id="web/upload/g.tar", change=Change.CREATE, file="/x/g.tar", **HEAD),
    CopyTag(id="web/copy_tag/v1", change=Change.CREATE, tag="v1", digest=A, source_repo="src", source_tag="v1", **HEAD),
    CopyContent(id="web/copy_content/index-from-src", change=Change.CREATE, source_repo="src", kind="index",
                digests=(A, B), **HEAD),
    SyncTag(id="web/sync_tag/v3", change=Change.CREATE, tag="v3", digest=A, skipped=(B,),
            platforms_skipped=("linux/s390x",), saved_bytes=700, **HEAD),
    CopyContent(id="web/copy_content/index-from-other", change=Change.CREATE, source_repo="other", kind="index",
                digests=(A,), skipped=(B,), **HEAD),
    PinTag(id="web/pin_tag/stable", change=Change.CREATE, tag="stable", digest=A, source_repo="src", source_tag="v1",
           **HEAD),
    PinTag(id="web/pin_tag/fixed", change=Change.CREATE, tag="fixed", digest=A, **HEAD),
    PinTag(id="web/pin_tag/by-hand", change=Change.CREATE, tag="by-hand", digest=A, tag_origin="manual", **HEAD),
    RemoveTag(id="web/remove_tag/old", change=Change.DELETE, tag="old", old_digest=A, removes={"tags": 1}, **HEAD),
    RemoveContent(id="web/remove_content/untagged", change=Change.DELETE, kind="untagged", removes={"blobs": 1}, **HEAD),
    V1Upload(id="web/v1_upload/s.tar", change=Change.CREATE, file="/x/s.tar", file_digest="sha256:" + "1" * 64,
             mask_id="c" * 64, v1_tags={"latest": "d" * 64}, adds={"v1_images": 2}, **HEAD),
    V1Sync(id="web/v1_sync/lib/web", change=Change.UPDATE, upstream_name="lib/web", v1_tags={"latest": "d" * 64},
           adds={"v1_tags": 1}, **HEAD),
    Publish(id="web/publish/team/web", change=Change.UPDATE, publish_name="team/web", protected=False,
            release_from="old", handover="team/web", **HEAD),
    Unpublish(id="web/unpublish/team/web", change=Change.DELETE, publish_name="team/web", **HEAD),
    DropVersions(id="web/drop_versions/versions", change=Change.DELETE, versions=(1, 2, 4), frees_bytes=0, **HEAD),
]


def test_every_op_has_one_type_and_a_sample() -> None:
    assert set(BY_OP) == set(Op) and all(BY_OP[t.op] is t for t in BY_OP.values())
    assert {type(a) for a in SAMPLES} == set(BY_OP.values())


@pytest.mark.parametrize("action", SAMPLES, ids=lambda a: a.id)
def test_json_round_trips_exactly_with_the_old_key_order(action: Action) -> None:
    doc = action.to_json()
    assert action_from_json(doc) == action
    keys = list(doc)
    assert keys == sorted(keys, key=JSON_KEYS.index)  # the order the one record had
    assert doc["op"] == action.op.value and keys[:2] == ["id", "op"]
    # what a field leaves empty is absent, as before: no nulls, no empty lists or objects
    assert all(v not in (None, [], {}) for v in doc.values())
    assert "cascade" not in doc or doc["cascade"] is True


def test_a_field_of_another_op_is_refused_as_a_malformed_plan() -> None:
    from reconciler.errors import InvalidInput

    doc = {**SAMPLES[0].to_json(), "tag": "v1"}  # create_repository has no tag
    with pytest.raises(InvalidInput, match="invalid action in plan"):
        action_from_json(doc)


def _documented() -> dict[str, set[str]]:
    """op -> the fields its row of the Actions table in docs/plan-json.md names."""
    rows: dict[str, set[str]] = {}
    for line in DOCS.read_text().splitlines():
        m = re.match(r"\| `(\w+)` \| [^|]+ \| ([^|]+) \|", line)
        if m and m.group(1) in {op.value for op in Op}:
            rows[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(2)))
    return rows


def test_docs_name_every_field_of_every_action_type() -> None:
    shared = {f.name for f in dataclasses.fields(BaseAction)} - {"download", "adds", "removes"}
    documented = _documented()
    assert set(documented) == {op.value for op in Op}
    for op, cls in BY_OP.items():
        own = {f.name for f in dataclasses.fields(cls)} - shared
        # download/adds/removes are listed where the op fills them; every other field must be
        assert own - {"download", "adds", "removes"} <= documented[op.value], (op.value, own - documented[op.value])


def test_a_pin_carries_the_origin_of_the_one_off_tag_command() -> None:
    """``reconciler tag`` is a pin that records origin manual, as the command always did;
    a declared pin records pin (and its JSON has no ``tag_origin``)."""
    from reconciler.model.content import Origin

    by_hand = next(a for a in SAMPLES if a.id == "web/pin_tag/by-hand")
    declared = next(a for a in SAMPLES if a.id == "web/pin_tag/fixed")
    assert isinstance(by_hand, PinTag) and isinstance(declared, PinTag)
    assert by_hand.new_origin is Origin.MANUAL and by_hand.to_json()["tag_origin"] == "manual"
    assert declared.new_origin is Origin.PIN and "tag_origin" not in declared.to_json()
