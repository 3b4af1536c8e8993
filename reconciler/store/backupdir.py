"""The backup folder both store backends write and restore from (``store backup`` /
``store restore``), and the parts of both procedures they share.

Layout::

    DIR/backup.json                 what, from where, when, counts; written last
    DIR/store.db | store.pgdump     the database snapshot (SQLite copy / pg_dump -Fc)
    DIR/blobs/<alg>/<2 hex>/<hex>   every blob the snapshot records
    DIR/manifests/<alg>/<2 hex>/<hex>  every manifest and index it records
    DIR/store-id                    the snapshot's store id (for people and tools)

The snapshot comes first and names the content; the files are then copied from the
store, each verified against its digest on the way in. Blobs are immutable and named by
digest, so a second backup into the same folder copies only what is new, and a file the
folder already holds is reused after its size matches (the verification pass re-hashes
every file). The snapshot is renamed into place only once its files are all there, and
``backup.json`` last: a folder whose ``backup.json`` is there is complete, whatever
happened to a later backup into it.

A backup holds the store's backup hold (``Store.backup_hold``) from the snapshot to the
last copied file: ``store gc``, the one thing that deletes bytes, waits for it, so no
file the snapshot names disappears before it is copied.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import InvalidInput, StoreCorrupt
from reconciler.model import Digest, DigestHasher
from reconciler.store.blobs import BlobStorage, LocalBlobs
from reconciler.store.blobs.local import fsync_path

FORMAT = "reconciler-backup"
FORMAT_VERSION = 1
INFO = "backup.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BackupInfo:
    """``backup.json``: enough to restore, and to tell one backup from another."""

    backend: str                 # "sqlite" | "postgresql"
    snapshot: str                # the file name of the database snapshot in the folder
    source: str                  # the store it was taken from (URL without password)
    store_id: int | None
    generation: int
    blobs: int
    manifests: int
    bytes: int
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    copied: int = 0              # files this backup copied (the rest were there already)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def read_info(folder: Path) -> BackupInfo:
    """The ``backup.json`` of ``folder``; ``InvalidInput`` when it is not a complete backup."""
    path = folder / INFO
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{folder} is not a complete reconciler backup (no {INFO})",
                           hint="give the folder `reconciler store backup --to` wrote; a backup that was "
                                "interrupted before its end has no backup.json") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidInput(f"{path} is not a reconciler backup description")
    if doc.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(f"{path} has format version {doc.get('format_version')}, this reconciler reads "
                           f"{FORMAT_VERSION}", hint="restore it with the reconciler version that wrote it")
    try:
        return BackupInfo(**doc)
    except TypeError as exc:
        raise InvalidInput(f"{path} is not a valid backup description: {exc}") from exc


def write_info(folder: Path, info: BackupInfo) -> None:
    write_atomic(folder / INFO, json.dumps(info.to_json(), indent=2, sort_keys=True).encode() + b"\n")


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def folder_areas(folder: Path) -> tuple[LocalBlobs, LocalBlobs]:
    """The blob and manifest files of a backup folder."""
    return LocalBlobs(folder, "blobs"), LocalBlobs(folder, "manifests")


def copy_files(source: BlobStorage, dest: BlobStorage, wanted: Iterable[tuple[Digest, int | None]]) -> int:
    """Copy every ``(digest, size)`` that ``dest`` lacks (or holds at another size) from
    ``source``, verified on the way in; the number of files copied."""
    copied = 0
    for digest, size in wanted:
        if size is not None and dest.size(digest) == size:
            continue
        if size is None and dest.exists(digest):
            continue
        with source.open(digest) as stream:
            dest.write(stream, digest, size=size, where=f"{source.location}: {digest}")
        copied += 1
    return copied


def prune(area: LocalBlobs, keep: set[Digest]) -> int:
    """Remove files of a backup folder the new snapshot no longer names."""
    removed = 0
    for digest, _ in list(area.all_digests()):
        if digest not in keep:
            area.remove(digest)
            removed += 1
    return removed


def verify(area: BlobStorage, wanted: Iterable[tuple[Digest, int | None]]) -> list[str]:
    """Re-read every file and hash it: the problems found (none: the copy is good)."""
    problems = []
    for digest, size in wanted:
        stored = area.size(digest)
        if stored is None:
            problems.append(f"{digest} is missing from {area.location}")
            continue
        if size is not None and stored != size:
            problems.append(f"{digest} has {stored} bytes in {area.location}, expected {size}")
            continue
        h = DigestHasher(digest.algorithm)
        with area.open(digest) as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
        if h.digest() != digest:
            problems.append(f"{digest} in {area.location} does not hash to its digest")
    return problems


def fail_on(problems: list[str], what: str) -> None:
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        raise StoreCorrupt(f"{what}: {len(problems)} problem(s): {shown}",
                           hint="nothing was marked complete; run the command again (files are re-copied)")


def target_is_empty(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


Rows = list[tuple[Digest, int | None]]  # (digest, size)


@dataclass(frozen=True)
class Snapshot:
    """What a database snapshot records: its blobs and manifests with sizes, its store id
    and generation."""

    blobs: Rows
    manifests: Rows
    store_id: int | None
    generation: int


def copy_content(blobs: BlobStorage, manifests: BlobStorage, folder: Path, snap: Snapshot) -> int:
    """The files ``snap`` names, from the store's storage into the backup folder (what the
    folder lacks, verified); the number of files copied."""
    blob_area, manifest_area = folder_areas(folder)
    return copy_files(blobs, blob_area, snap.blobs) + copy_files(manifests, manifest_area, snap.manifests)


def complete(folder: Path, tmp: Path, info: BackupInfo, snap: Snapshot,
             check_snapshot: Callable[[Path], list[str]]) -> BackupInfo:
    """The end of every backup, once the snapshot (in ``tmp``) and its files are in the
    folder: the snapshot renamed into place, files it does not name removed, the
    verification pass (``check_snapshot`` on the snapshot, every file re-hashed), then the
    marker and ``backup.json``, which marks the folder complete."""
    (folder / INFO).unlink(missing_ok=True)  # complete again only after the checks below
    fsync_path(tmp)
    os.replace(tmp, folder / info.snapshot)
    fsync_path(folder)
    blob_area, manifest_area = folder_areas(folder)
    prune(blob_area, {d for d, _ in snap.blobs})
    prune(manifest_area, {d for d, _ in snap.manifests})
    problems = check_snapshot(folder / info.snapshot)
    problems += verify(blob_area, snap.blobs) + verify(manifest_area, snap.manifests)
    fail_on(problems, f"verifying the backup in {folder}")
    if snap.store_id is not None:
        blob_area.write_marker("store-id", f"{snap.store_id}\n")
    write_info(folder, info)
    return info


def check_folder(folder: Path) -> Path:
    """The backup folder ``--to`` names, created if needed (its parent must exist)."""
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot use {folder} as the backup folder: {exc.strerror or exc}",
                           hint="give a folder whose parent exists and is writable") from exc
    existing = folder / INFO
    if any(folder.iterdir()) and not existing.exists() and not (folder / "blobs").is_dir():
        raise InvalidInput(f"{folder} is not empty and holds no reconciler backup",
                           hint="back up into an empty folder, or into the folder of an earlier backup "
                                "(only new files are copied)")
    return folder

