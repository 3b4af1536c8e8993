"""``upload``: put an image file into a repository, detecting the format by content
(docs/original-system.md, "Upload").

- a directory or tar with ``index.json``: an OCI image layout (``oci-archive:``);
- a tar whose ``manifest.json`` is an object: a skopeo ``dir:`` tarball (v2s2, v2s1);
- a tar whose ``manifest.json`` is a list: a ``docker save`` tarball;
- a JSON file: a manifest list / OCI index whose children are already in the repository.

Everything is checked before anything is stored: tar members (``tarsafe``), manifests,
and that every blob and child the new manifests need is in the file or already in the
repository (a blob already in the repository need not be in the file), and that each
blob in the file is the size its manifest declares. The content then moves through the
one transfer walk (``ops.transfer``: the file as a ``FileSource`` into the store's
content batch): only what the store lacks is read from the file, each blob verified on
the way; a mismatch raises ``DigestMismatch`` and nothing is committed, no version made.
The command plans and applies the repos.yaml ``uploads:`` entry
(``apply.content_commands.upload_command``), which stores the file with ``upload_content``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import InvalidInput, UploadInvalid
from reconciler.model import Digest, Index, Manifest, validate_tag
from reconciler.model.content import ContentSet
from reconciler.ops.formats.archive import Archive, open_archive
from reconciler.ops.formats.dockersave import read_docker_save
from reconciler.ops.formats.filesource import FileSource
from reconciler.ops.formats.tarsafe import DEFAULT_LIMITS, Limits
from reconciler.ops.formats.upload_formats import Parsed, read_manifest_json, read_oci_layout, read_skopeo_dir
from reconciler.ops.transfer.adapters import StoreSink
from reconciler.ops.transfer.walk import TransferFailed, TransferPolicy, size_problem, transfer
from reconciler.ops.uploadtags import entry_tags
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)
_JSON_SNIFF = 4096


@dataclass(frozen=True)
class UploadResult:
    format: str
    content: ContentSet  # everything the uploaded manifests need (new or already there)
    roots: tuple[Digest, ...]  # the top-level manifests / indexes of the file
    tags: dict[str, Digest] = field(default_factory=dict)
    blobs_stored: int = 0
    blobs_reused: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class UploadInspection:
    """What an upload file holds, read without storing anything (``inspect_upload``).

    ``content`` is everything its manifests need (blobs, manifests, indexes), ``blobs``
    the blob descriptors they reference (digest -> size), ``roots`` the top-level
    manifests/indexes, ``tags`` the tags the file names, ``missing`` what its manifests
    need that the file itself lacks (an index JSON lists children expected to be in the
    repository already)."""

    format: str
    manifests: tuple[Manifest | Index, ...]
    roots: tuple[Digest, ...]
    content: ContentSet
    blobs: dict[Digest, int | None] = field(default_factory=dict)
    tags: dict[str, Digest] = field(default_factory=dict)
    missing: tuple[str, ...] = ()


def inspect_upload(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> UploadInspection:
    """Read ``path`` with the same format detection and readers an upload uses (so the
    same manifests and digests), store nothing, and say what importing it would add."""
    fmt, archive, read = detect(path, limits=limits)
    try:
        parsed = read()
        with parsed.resources:
            _check_sizes(parsed, path)
            content, missing = _needed(parsed, ContentSet())
            blobs = {d.digest: d.size for m in parsed.manifests if isinstance(m, Manifest) for d in m.blobs()}
            return UploadInspection(fmt, tuple(parsed.manifests), tuple(parsed.roots), content, blobs,
                                    dict(parsed.tags), tuple(missing))
    finally:
        if archive is not None:
            archive.close()


def detect(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> tuple[str, Archive | None, Callable[[], Parsed]]:
    """(format, archive, the reader of that format) for ``path``; the caller closes the
    archive. The reader gets what detection already read (no file is read twice)."""
    if not path.exists():
        raise UploadInvalid(f"{path}: no such file or directory")
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(_JSON_SNIFF)
        if head.lstrip()[:1] == b"{":
            if path.stat().st_size > limits.json_bytes:
                raise UploadInvalid(f"{path}: JSON file larger than {limits.json_bytes} bytes")
            raw = path.read_bytes()
            return "index-json", None, lambda: read_manifest_json(raw, where=str(path))
    archive = open_archive(path, limits=limits)
    try:
        if archive.has("index.json"):
            return "oci-layout", archive, lambda: read_oci_layout(archive)
        if archive.has("manifest.json"):
            doc = archive.read_json("manifest.json")
            if isinstance(doc, list):
                return "docker-save", archive, lambda: read_docker_save(archive, doc)
            if isinstance(doc, dict):
                return "skopeo-dir", archive, lambda: read_skopeo_dir(archive)
        raise UploadInvalid(
            f"{path}: cannot tell the upload format: no index.json (OCI layout) and no manifest.json "
            "(skopeo dir: or docker save)",
            hint="upload a skopeo dir: tarball, an OCI layout or oci-archive, a docker save tarball, "
                 "or a manifest list / OCI index JSON file")
    except BaseException:
        archive.close()
        raise


def _needed(parsed: Parsed, existing: ContentSet) -> tuple[ContentSet, list[str]]:
    """Everything the file's manifests need, and what is neither in the file nor in the
    repository (as readable problem strings)."""
    in_file = {m.digest for m in parsed.manifests}
    blobs: set[Digest] = set()
    missing: list[str] = []
    for m in parsed.manifests:
        if isinstance(m, Index):
            for child in m.children():
                if child not in in_file and child not in existing.manifests and child not in existing.indexes:
                    missing.append(f"manifest {child} (listed by {m.digest})")
        else:
            for d in m.blobs():
                blobs.add(d.digest)
                if d.digest not in parsed.blobs and d.digest not in existing.blobs:
                    missing.append(f"blob {d.digest} (used by {m.digest})")
    content = ContentSet(
        frozenset(blobs),
        frozenset(m.digest for m in parsed.manifests if isinstance(m, Manifest)),
        frozenset(m.digest for m in parsed.manifests if isinstance(m, Index)),
    )
    return content, sorted(set(missing))


def _check_sizes(parsed: Parsed, path: Path) -> None:
    """Refuse a file whose blob is not the size its manifest declares (the transfer
    walk's check, ``size_problem``), before anything is stored."""
    problem = size_problem(FileSource(parsed, str(path)), parsed.manifests)
    if problem is not None:
        raise _invalid(problem[1])


def _invalid(error: BaseException) -> BaseException:
    """An upload's refusal: ``UploadInvalid`` for what the file gets wrong."""
    if type(error) is InvalidInput:
        return UploadInvalid(error.message, hint=error.hint)
    return error


def upload_content(store: Store, path: Path, *, existing: ContentSet, tag: str | None = None,
                   limits: Limits = DEFAULT_LIMITS) -> UploadResult:
    """Check ``path`` completely, then store its blobs and manifests (no version). The
    tags: every tag the file names, plus ``tag`` (validated first) on the image the file
    names so or on its only image."""
    if tag is not None:
        validate_tag(tag)
    fmt, archive, read = detect(Path(path), limits=limits)
    try:
        parsed = read()
        with parsed.resources:
            content, missing = _needed(parsed, existing)
            if missing:
                raise UploadInvalid(
                    f"{path}: {len(missing)} referenced item(s) are neither in the file nor in the repository: "
                    + "; ".join(missing),
                    hint="upload the missing images first, or include their blobs in the file; nothing was stored")
            _check_sizes(parsed, path)
            # the file's own tags, and ``tag`` on the image it names (ops.uploadtags)
            tags = {**parsed.tags, **(entry_tags(tag, parsed.roots, parsed.tags, where=str(path)) if tag else {})}
            # counted as the user reads them: from the file, and already in the repository
            reused = sum(1 for d in content.blobs if d not in parsed.blobs)
            stored = len(content.blobs) - reused
            # every manifest of the file is a root: the walk moves each and what it needs
            # (what the store holds already, it does not read from the file again)
            roots = [m.digest for m in parsed.manifests]
            with store.content_batch() as batch:
                try:
                    transfer(FileSource(parsed, str(path)), StoreSink(store, batch), roots,
                             policy=TransferPolicy(jobs=1))
                except TransferFailed as failed:
                    raise _invalid(failed.error) from failed.error
                batch.commit()
            return UploadResult(fmt, content, tuple(parsed.roots), tags, stored, reused, tuple(parsed.notes))
    finally:
        if archive is not None:
            archive.close()

