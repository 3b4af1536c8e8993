"""One way in: a one-off command as a one-repository desired change.

``reconciler sync ID --mirror`` means what this repos.yaml entry means, for that one
repository (as ``terraform apply -target`` does):

    repositories:
      ID: {feed: URL, upstream_name: NAME, mirror: true}

So a one-off command does not transform the store itself: it builds the ``RepositorySpec``
here, and ``apply.oneoff`` plans and applies it with the same diff and the same apply
runner as ``reconciler apply -f``. What the command does not speak about stays as it is:
its tags are kept (no ``prune``), its publication is not switched (the apply of a one-off
change leaves publish and unpublish actions out, as the one-off commands always have) and
no old version is dropped (no ``retain_versions``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from reconciler.desired.model import DesiredState, RepositorySpec, TagPin, Upload
from reconciler.model import Digest
from reconciler.model.content import Origin
from reconciler.model.platforms import PlatformFilter
from reconciler.model.registry import RegistryConfig
from reconciler.model.tagfilter import ALL_TAGS, TagFilter

#: the ``desired_path`` a one-off change's plan names (no file: the command line)
COMMAND_LINE = "<command line>"


def sync_spec(repo_id: str, feed: RegistryConfig, upstream_name: str, *, tag_filter: TagFilter = ALL_TAGS,
              mirror: bool = False, allow_empty: bool = False,
              platforms: PlatformFilter | None = None) -> RepositorySpec:
    """``reconciler sync ID --feed URL --upstream-name NAME [filters] [--platform ...]
    [--mirror]`` as the repos.yaml entry ``{feed, upstream_name, tags, platforms, mirror,
    allow_empty}``."""
    return RepositorySpec(id=repo_id, feed=feed, upstream_name=upstream_name, tag_filter=tag_filter,
                          mirror=mirror, allow_empty=allow_empty, platforms=platforms)


def tag_spec(repo_id: str, tag: str, digest: Digest) -> RepositorySpec:
    """``reconciler tag ID TAG DIGEST`` as the repos.yaml entry ``{pins: {TAG: DIGEST}}``,
    with the origin the command has always recorded (``manual``; a declared pin's is ``pin``)."""
    return RepositorySpec(id=repo_id, pins=(TagPin(tag, digest=digest, origin=Origin.MANUAL),))


def upload_spec(repo_id: str, file: Path, tag: str | None = None) -> RepositorySpec:
    """``reconciler upload ID FILE [--tag T]`` as the repos.yaml entry ``{uploads: [{file},
    {file, tag: T}]}``: the command sets the tags the file names, and T too (an entry
    with ``tag:`` sets only T)."""
    entries = (Upload(file.resolve()),) + ((Upload(file.resolve(), tag),) if tag else ())
    return RepositorySpec(id=repo_id, uploads=entries)


def v1_upload_spec(repo_id: str, file: Path, mask_id: str | None = None) -> RepositorySpec:
    """``reconciler upload ID FILE --v1 [--mask-id IMAGE]`` as the repos.yaml entry
    ``{uploads: [{file, v1: true, mask_id}]}``."""
    return RepositorySpec(id=repo_id, uploads=(Upload(file.resolve(), v1=True, mask_id=mask_id),))


def one_repository(spec: RepositorySpec, command: str) -> DesiredState:
    """A desired state that declares ``spec`` only (its plan is targeted at it).
    ``command``: the command line it stands for; its digest is the state's digest, so
    two runs of one command plan alike."""
    digest = "sha256:" + hashlib.sha256(f"{command}\n{spec!r}".encode()).hexdigest()
    return DesiredState(path=Path(COMMAND_LINE), digest=digest, version=1, registries={},
                        repositories={spec.id: spec}, file=command)
