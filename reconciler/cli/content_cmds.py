"""``reconciler upload|tag|copy|remove``: the content commands.

Each is the repos.yaml entry that says the same, planned and applied under the store lock
(``apply.content_commands``; the v1 kinds: ``apply.commands``), and prints the new
version's content summary (added/removed per kind), or JSON with ``--json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import click

from reconciler.apply import commands
from reconciler.apply.content_commands import (
    copy_command,
    remove_command,
    tag_command,
    upload_command,
    v1_upload_command,
)
from reconciler.apply.oneoff import run_command
from reconciler.cli.context import AppContext, echo_json, pass_app
from reconciler.ops.result import OpResult

_KIND_WORDS = {"blobs": "blob", "manifests": "manifest", "indexes": "index", "tags": "tag",
               "v1_images": "v1 image", "v1_tags": "v1 tag"}
_PLURALS = {"blob": "blobs", "manifest": "manifests", "index": "indexes", "tag": "tags",
            "v1 image": "v1 images", "v1 tag": "v1 tags"}


def _counts(items: Mapping[str, int]) -> str:
    parts = []
    for key in ("indexes", "manifests", "blobs", "tags", "v1_images", "v1_tags"):
        n = int(items.get(key, 0))
        if n:
            word = _KIND_WORDS[key]
            parts.append(f"{n} {word if n == 1 else _PLURALS[word]}")
    return ", ".join(parts)


def render(result: OpResult, as_json: bool) -> None:
    if as_json:
        echo_json(result.to_json())
        return
    if result.version is None:
        click.echo(f"{result.repo_id}: no changes (no new version)")
        return
    click.echo(f"{result.repo_id}: version {result.version.number}")
    added, removed = _counts(result.summary.added), _counts(result.summary.removed)
    click.echo(f"  added:   {added or 'nothing'}")
    click.echo(f"  removed: {removed or 'nothing'}")


_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_LOCK = click.option("--lock-timeout", type=float, default=60.0, show_default=True,
                     help="Seconds to wait for the store lock.")


@click.command("upload")
@click.argument("repo_id")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--tag", "tag_name", metavar="NAME",
              help="Also set NAME: on the image the file names NAME, else on its only image (the tags the "
                   "file names are set either way).")
@click.option("--v1", "as_v1", is_flag=True,
              help="Import a docker save tarball as Docker v1 images (with their parents and v1 tags).")
@click.option("--mask-id", metavar="IMAGE_ID",
              help="With --v1: skip this image and all its ancestors (they are served from elsewhere).")
@_LOCK
@_JSON
@pass_app
def upload_cmd(app: AppContext, repo_id: str, path: Path, tag_name: str | None, as_v1: bool, mask_id: str | None,
               lock_timeout: float, as_json: bool) -> None:
    """Upload an image file into REPO_ID (created if missing).

    The format is detected by content: a skopeo dir: tarball (v2s2, v2s1), an OCI image
    layout (directory or oci-archive tar), a docker save tarball, or a manifest list /
    OCI index JSON file whose children are already in the repository.

    It is the repos.yaml entry uploads: [{file}] ([{file}, {file, tag}] with --tag),
    planned and applied: the tags it sets get origin upload, also one already at that image.

    \b
    Example:
      skopeo copy docker://busybox:latest dir:bb && tar -C bb -cf busybox.tar .
      reconciler upload schema2 busybox.tar --tag latest
      docker save busybox > busybox.tar && reconciler upload busybox busybox.tar --v1
      reconciler upload tutorial tutorial.tar --v1 --mask-id f38e479062c4953de709cc7f08fa8f85bec6bc5d01f03e340f7caf2990e8efd1
    """
    if mask_id is not None and not as_v1:
        raise click.UsageError("--mask-id needs --v1")
    if as_v1 and tag_name is not None:
        raise click.UsageError("--tag does not apply to --v1 (v1 tags come from the tarball's repositories file)")
    store = app.creating_store
    if as_v1:  # the repos.yaml `uploads:` entry with v1: true, planned and applied
        result = v1_upload_command(store, repo_id, path, mask_id=mask_id, lock_timeout=lock_timeout)
    else:  # the repos.yaml `uploads:` entry, planned and applied (apply.content_commands)
        result = upload_command(store, repo_id, path, tag=tag_name, lock_timeout=lock_timeout)
    render(result, as_json)


@click.command("tag")
@click.argument("repo_id")
@click.argument("tag_name", metavar="TAG")
@click.argument("digest")
@_LOCK
@_JSON
@pass_app
def tag_cmd(app: AppContext, repo_id: str, tag_name: str, digest: str, lock_timeout: float, as_json: bool) -> None:
    """Create or move TAG in REPO_ID to DIGEST (a manifest or index in the repository).

    It is the repos.yaml entry pins: {TAG: DIGEST}, planned and applied; the tag gets
    origin manual.

    \b
    Example:
      reconciler tag schema2 latest sha256:d5483f2ed144c808d4b077f5ec6821d2b3c378ca6cd5a3a5ef9927b99ac28f99
    """
    # the repos.yaml `pins:` entry TAG: DIGEST (origin manual), planned and applied
    result = tag_command(app.store, repo_id, tag_name, digest, lock_timeout=lock_timeout)
    render(result, as_json)


@click.command("copy")
@click.argument("kind", type=click.Choice(["tag", "manifest", "index", "v1-image", "v1-tag"]))
@click.argument("names", nargs=-1, metavar="[NAME_OR_DIGEST]...")
@click.option("--from", "source", required=True, metavar="REPO", help="Source repository.")
@click.option("--to", "target", required=True, metavar="REPO", help="Target repository (created if missing).")
@click.option("--all", "copy_all", is_flag=True, help="Copy every tag / manifest / index of the source.")
@_LOCK
@_JSON
@pass_app
def copy_cmd(app: AppContext, kind: str, names: tuple[str, ...], source: str, target: str, copy_all: bool,
             lock_timeout: float, as_json: bool) -> None:
    """Copy tags, manifests or indexes from one repository to another.

    A tag brings its manifest or index and everything under it; a manifest brings its
    blobs and no tags; an index brings its manifests and their blobs and no tags.
    A v1-image brings all its ancestors and no v1 tags; a v1-tag brings its image chain.
    The v2 kinds are the target's repos.yaml copy: entry, planned and applied.

    \b
    Examples:
      reconciler copy manifest --from containers --to containers2 --all
      reconciler copy tag --from synctest --to containers2 1.36.1 latest
      reconciler copy v1-image --from busybox --to busybox2 --all
    """
    if copy_all == bool(names):
        raise click.UsageError("give NAME_OR_DIGEST arguments or --all (not both)")
    if kind.startswith("v1-"):
        copy = commands.V1Copy(source, target, kind[3:], "all" if copy_all else list(names))  # type: ignore[arg-type]
        result = run_command(app.store, copy, lock_timeout=lock_timeout)
    else:  # the repos.yaml `copy:` entry, planned and applied (apply.content_commands)
        result = copy_command(app.store, source=source, target=target, kind=kind,  # type: ignore[arg-type]
                              names="all" if copy_all else list(names), lock_timeout=lock_timeout)
    render(result, as_json)


@click.command("remove")
@click.argument("kind", type=click.Choice(["tag", "manifest", "index", "v1-image", "v1-tag"]))
@click.argument("repo_id")
@click.argument("names", nargs=-1, required=True, metavar="NAME_OR_DIGEST...")
@_LOCK
@_JSON
@pass_app
def remove_cmd(app: AppContext, kind: str, repo_id: str, names: tuple[str, ...], lock_timeout: float,
               as_json: bool) -> None:
    """Remove tags, manifests or indexes from REPO_ID.

    A tag removes only the tag. A manifest removes its tags and the blobs no other
    manifest uses. An index removes its tags, the manifests it lists that are untagged
    and not listed by another index, and their orphaned blobs. Removing a manifest that
    a remaining index lists is refused. A v1-image removes the image and its v1 tags,
    not its parents (refused while a remaining image has it as parent). The v2 kinds are
    the repos.yaml remove: entry, planned and applied.

    \b
    Examples:
      reconciler remove tag containers latest
      reconciler remove v1-tag busybox old
      reconciler remove index containers sha256:c152ddeda2b828fbb610cb9e4cb121e1879dd5301d336f0a6c070b2844a0f56d
    """
    if kind.startswith("v1-"):
        result = run_command(app.store, commands.V1Remove(repo_id, kind[3:], list(names)),  # type: ignore[arg-type]
                             lock_timeout=lock_timeout)
    else:  # the repos.yaml `remove:` entry, planned and applied (apply.content_commands)
        result = remove_command(app.store, repo_id, kind, list(names),  # type: ignore[arg-type]
                                lock_timeout=lock_timeout)
    render(result, as_json)


def register(cli: click.Group) -> None:
    for command in (upload_cmd, tag_cmd, copy_cmd, remove_cmd):
        cli.add_command(command)
