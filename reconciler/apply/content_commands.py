"""``reconciler upload`` (``--v1`` too), ``tag``, ``copy`` and ``remove`` as one-repository
changes (the repos.yaml entries ``uploads: [{file, tag}]`` and ``[{file, v1, mask_id}]``, ``pins: {TAG: DIGEST}``, ``copy: [{from,
tags|manifests|indexes}]`` and ``remove: {tags|manifests|indexes}``), planned and applied by
``apply.oneoff`` like repos.yaml.

The request is checked first with the operations' own pure functions (``ops.tag``,
``ops.copy``, ``ops.remove``): unknown names, missing references and a manifest a
remaining index lists are refused before anything is planned, with the messages the
commands always gave, and their answer (what is copied, what the cascade removes) is the
result's ``details``. The change itself is the plan's, so the repository ends up as the
repos.yaml line leaves it. A failed command changes nothing: its action's error (the
same exception) is the command's, and the repository is created only with its version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from reconciler.apply.oneoff import OneOffRun, run_one_off
from reconciler.desired.model import ALL, CopySpec, DesiredState, Removal, RepositorySpec
from reconciler.desired.oneoff import one_repository, tag_spec, upload_spec, v1_upload_spec
from reconciler.errors import InvalidInput, ReconcilerError
from reconciler.model import Digest, validate_tag
from reconciler.model.content import ContentSet
from reconciler.model.repository import ContentSummary, Repository, RepositoryVersion
from reconciler.ops.copy import CopyKind, copy_state
from reconciler.ops.formats.tarsafe import DEFAULT_LIMITS, Limits
from reconciler.ops.graph import load_graph
from reconciler.ops.remove import RemoveKind, remove_state
from reconciler.ops.result import OpResult, resolve_digests
from reconciler.ops.state import RepoState
from reconciler.ops.tag import tag_state
from reconciler.ops.upload import UploadResult, upload_content
from reconciler.ops.uploadtags import entry_tags
from reconciler.ops.v1.upload import upload_v1
from reconciler.store.protocol import Store


def _op_result(store: Store, run: OneOffRun, details: dict[str, object]) -> OpResult:
    """The command's ``OpResult``; a failed action of the plan is the command's error, the
    very exception (the runner made no repository change then: ``Runner.deferred``)."""
    for r in run.result.results:
        if r.error is not None:
            raise run.result.errors.get(r.id) or ReconcilerError(r.error)
    number = run.result.versions.get(run.repo_id)
    info = next((v for v in store.version_list(run.repo_id) if v.number == number), None) if number else None
    summary = info.summary if info else (run.after or RepoState()).summary_against(run.before or RepoState())
    return OpResult(run.repo_id, info, summary, details)


def remove_command(store: Store, repo_id: str, kind: RemoveKind, names: Sequence[str], *,
                   lock_timeout: float = 60.0) -> OpResult:
    """``reconciler remove KIND REPO NAME...``: exactly one new version, or an error and no change."""
    details: dict[str, object] = {}

    def change(repo: Repository | None) -> DesiredState:
        state = RepoState.of(store.version_get(repo_id))  # a missing repository: its usual error
        where = f"repository {repo_id!r}"
        removal = remove_state(state, load_graph(store, state.content), kind, names, repo_id=where)
        details.update({"kind": kind, "names": list(names), "removed": removal.to_json()})
        if kind == "tag":
            spec = Removal(tags=tuple(dict.fromkeys(names)))
        else:
            digests = tuple(dict.fromkeys(resolve_digests(state, names, kind=kind, where=where)))
            spec = Removal(manifests=digests) if kind == "manifest" else Removal(indexes=digests)
        return one_repository(RepositorySpec(id=repo_id, remove=spec), f"remove {kind} {repo_id}")

    return run_one_off(store, change, repo_id, operation=f"remove {kind}", lock_timeout=lock_timeout,
                       finish=lambda run: _op_result(store, run, details))


def copy_command(store: Store, *, source: str, target: str, kind: CopyKind,
                 names: Sequence[str] | Literal["all"], lock_timeout: float = 60.0) -> OpResult:
    """``reconciler copy KIND --from SOURCE --to TARGET``: the target (created when missing)
    gets exactly one new version."""
    if source == target:
        raise InvalidInput(f"cannot copy repository {source!r} into itself", hint="give a different --to repository")
    details: dict[str, object] = {}

    def change(repo: Repository | None) -> DesiredState:
        src_version = store.version_get(source)
        src = RepoState.of(src_version)
        base = store.version_get(target) if repo else RepositoryVersion(target, 0, RepoState().content, {})
        after = copy_state(src, RepoState.of(base), load_graph(store, src.content), kind, names,
                           source_id=f"repository {source!r}")
        details.update({"source": source, "source_version": src_version.number, "kind": kind,
                        "names": "all" if names == "all" else list(names), "created_target": repo is None,
                        "copied": after.summary_against(RepoState.of(base)).added})
        selected: tuple[str, ...] | str = ALL if names == "all" else tuple(dict.fromkeys(names))
        if kind != "tag" and names != "all":
            selected = tuple(str(d) for d in dict.fromkeys(
                resolve_digests(src, names, kind=kind, where=f"repository {source!r}")))
        copy = CopySpec(from_repo=source, **{"tags" if kind == "tag" else f"{kind}s" if kind == "manifest"
                                             else "indexes": selected})  # type: ignore[arg-type]
        return one_repository(RepositorySpec(id=target, copies=(copy,)), f"copy {kind} {source} {target}")

    return run_one_off(store, change, target, operation=f"copy {kind} from {source}", lock_timeout=lock_timeout,
                       finish=lambda run: _op_result(store, run, details))


def tag_command(store: Store, repo_id: str, tag: str, digest: Digest | str, *, lock_timeout: float = 60.0) -> OpResult:
    """``reconciler tag REPO TAG DIGEST``: create or move ``tag`` (origin ``manual``) to a
    manifest or index the repository holds; one new version (none if unchanged)."""
    details: dict[str, object] = {}

    def change(repo: Repository | None) -> DesiredState:
        state = RepoState.of(store.version_get(repo_id))  # a missing repository: its usual error
        old = state.tags.get(tag)
        after = tag_state(state, tag, digest, repo_id=f"repository {repo_id!r}")  # the command's refusals
        details.update({"tag": tag, "digest": str(after.tags[tag].digest), "previous": str(old.digest) if old else None})
        return one_repository(tag_spec(repo_id, tag, after.tags[tag].digest), f"tag {repo_id} {tag}")

    return run_one_off(store, change, repo_id, operation=f"tag {tag}", lock_timeout=lock_timeout,
                       finish=lambda run: _op_result(store, run, details))


def upload_command(store: Store, repo_id: str, path: Path | str, *, tag: str | None = None,
                   lock_timeout: float = 60.0, limits: Limits = DEFAULT_LIMITS) -> OpResult:
    """``reconciler upload REPO FILE [--tag T]``: the file's images into ``repo_id``
    (created if missing), the tags the file names and ``T`` with origin ``upload``; one new
    version. That is the repos.yaml entries ``uploads: [{file}, {file, tag: T}]`` (an
    entry with ``tag:`` sets only T); the file is imported once for both."""
    path = Path(path)
    if tag is not None:
        validate_tag(tag)
    details: dict[str, object] = {}
    imported: dict[Path, UploadResult] = {}
    tags_set: dict[str, str] = {}  # every tag the command sets (the file's and T)

    def change(repo: Repository | None) -> DesiredState:
        details["created_repository"] = repo is None
        return one_repository(upload_spec(repo_id, path, tag), f"upload {repo_id} {path}")

    def uploader(store: Store, file: Path, existing: ContentSet,
                 tag: str | None) -> tuple[ContentSet, Mapping[str, Digest]]:
        if file not in imported:
            imported[file] = result = upload_content(store, file, existing=existing, limits=limits)
            details.update({"format": result.format, "file": str(path), "roots": [str(d) for d in result.roots],
                            "blobs_stored": result.blobs_stored, "blobs_reused": result.blobs_reused,
                            "notes": list(result.notes)})
        result = imported[file]
        tags = {**result.tags, **(entry_tags(tag, result.roots, result.tags, where=str(path)) if tag else {})}
        tags_set.update((n, str(d)) for n, d in tags.items())
        details["tags"] = dict(sorted(tags_set.items()))
        return result.content, tags

    return run_one_off(store, change, repo_id, operation=f"upload {path.name}", lock_timeout=lock_timeout,
                       uploader=uploader, finish=lambda run: _op_result(store, run, details))


def v1_upload_command(store: Store, repo_id: str, path: Path | str, *, mask_id: str | None = None,
                      lock_timeout: float = 60.0) -> OpResult:
    """``reconciler upload REPO FILE --v1 [--mask-id IMAGE]``: the v1 images of a docker save
    tarball into ``repo_id`` (created if missing); one new version, none when the file
    brings nothing new (then ``details`` says what the file holds, as the plan read it)."""
    path = given = Path(path)
    done: list[OpResult] = []

    def change(repo: Repository | None) -> DesiredState:
        return one_repository(v1_upload_spec(repo_id, path, mask_id), f"upload --v1 {repo_id} {path}")

    def v1_uploader(store: Store, repo_id: str, path: Path | str, *, mask_id: str | None = None) -> OpResult:
        result = upload_v1(store, repo_id, path, mask_id=mask_id)
        done.append(result := dataclasses.replace(result, details={**result.details, "file": str(given)}))
        return result

    def finish(run: OneOffRun) -> OpResult:
        _op_result(store, run, {})  # a failed import is the command's error
        if done:
            return done[-1]
        info = run.observed.v1_uploads.get((repo_id, str(path.resolve())))
        details: dict[str, object] = {"format": "docker-save-v1", "file": str(path), "masked": mask_id,
                                      "images": list(info.images) if info else [],
                                      "tags": dict(sorted(info.tags.items())) if info else {},
                                      "images_stored": 0, "notes": list(info.notes) if info else [],
                                      "created_repository": False}
        return OpResult(repo_id, None, ContentSummary(), details)

    return run_one_off(store, change, repo_id, operation=f"upload {path.name}", lock_timeout=lock_timeout,
                       v1_uploader=v1_uploader, finish=finish)
