"""repos.yaml uploads take the tags the file names, and plan and apply agree on them.

An OCI layout names its images' tags (``org.opencontainers.image.ref.name``). An upload
entry without ``tag:`` sets every one of them; an entry with ``tag: NAME`` sets exactly
NAME, on the image the file names NAME or, in a one-image file, on that image. Either
way the plan shows what apply then does, and the next plan says no changes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import api
from reconciler.apply.content_commands import upload_command as upload
from reconciler.errors import ReconcilerError
from reconciler.plan.actions import Op, Upload
from reconciler.store.protocol import Store
from tests.support.archives import oci_layout_files, write_tar
from tests.support.imagegen import Image, build_image, build_multiarch
from tests.support.narrow import narrow

IMAGES = {"v1": build_image("one"), "v2": build_image("two", oci=True), "v3": build_multiarch("three")}


def three_tags(tmp_path: Path) -> Path:
    """An oci-archive with three images, named v1, v2 and v3."""
    entries: list[tuple[Image, str | None]] = [(img, tag) for tag, img in IMAGES.items()]
    return write_tar(tmp_path / "three.tar", oci_layout_files(entries))


def write_yaml(tmp_path: Path, uploads: str) -> Path:
    path = tmp_path / "repos.yaml"
    path.write_text(f"version: 1\nrepositories:\n  r:\n    uploads:\n{uploads}")
    return path


def tags_of(store: Store) -> dict[str, str]:
    return {name: str(e.digest) for name, e in store.version_get("r").tags.items()}


def test_an_untagged_upload_sets_every_tag_the_file_names(store: Store, tmp_path: Path) -> None:
    three_tags(tmp_path)
    yaml = write_yaml(tmp_path, "      - file: three.tar\n")
    plan, result = api.apply_file(store, yaml)
    assert result.ok
    assert tags_of(store) == {t: str(i.digest) for t, i in IMAGES.items()}
    assert not api.make_plan(store, yaml).has_changes
    # the plan showed the tags it set (and a saved plan carries them for apply to check)
    (action,) = [a for a in plan.actions if a.op is Op.UPLOAD]
    action = narrow(Upload, action)
    assert dict(action.upload_tags) == {t: str(i.digest) for t, i in IMAGES.items()}


def test_one_entry_per_tag_selects_the_image_the_file_names(store: Store, tmp_path: Path) -> None:
    three_tags(tmp_path)
    yaml = write_yaml(tmp_path, "      - {file: three.tar, tag: v1}\n      - {file: three.tar, tag: v3}\n")
    plan = api.make_plan(store, yaml)
    assert sorted(a.tag or "" for a in plan.actions if a.op is Op.UPLOAD) == ["v1", "v3"]  # "": an untagged one
    _, result = api.apply_file(store, yaml)
    assert result.ok, result.to_json()
    assert tags_of(store) == {"v1": str(IMAGES["v1"].digest), "v3": str(IMAGES["v3"].digest)}
    assert not api.make_plan(store, yaml).has_changes


def test_a_tag_the_file_does_not_name_fails_the_plan_not_the_apply(store: Store, tmp_path: Path) -> None:
    three_tags(tmp_path)
    yaml = write_yaml(tmp_path, "      - {file: three.tar, tag: latest}\n")
    with pytest.raises(ReconcilerError, match="3 images.*v1, v2, v3"):
        api.make_plan(store, yaml)
    assert store.repository_find("r") is None


def test_a_tag_on_a_one_image_file_tags_that_image(store: Store, tmp_path: Path) -> None:
    write_tar(tmp_path / "one.tar", oci_layout_files([(IMAGES["v2"], "2.0")]))
    yaml = write_yaml(tmp_path, "      - {file: one.tar, tag: stable}\n")
    _, result = api.apply_file(store, yaml)
    assert result.ok
    assert tags_of(store) == {"stable": str(IMAGES["v2"].digest)}
    assert not api.make_plan(store, yaml).has_changes


def test_upload_command_tag_names_one_of_the_files_images(store: Store, tmp_path: Path) -> None:
    upload(store, "r", three_tags(tmp_path), tag="v2")
    assert tags_of(store) == {t: str(i.digest) for t, i in IMAGES.items()}
