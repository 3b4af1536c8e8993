"""Docker v1 images in the SQL stores, SQLite and PostgreSQL (migration ``0005_v1_images``).

Images are global rows (``v1_images``); a repository version holds image ids and v1
tags in ``repo_v1_images`` / ``repo_v1_tags`` with the same added/removed ranges as the
OCI content, and shares the version numbers with it: ``v1_commit`` makes the next version
(rows of the OCI side stay live, so they carry over), and an OCI ``version_commit`` leaves
the v1 rows live in the same way. Invariants, checked on commit and by ``store check``:
every image of a version is stored and its layer blob is stored; an image's parent is in
the version or masked; a v1 tag names an image in the version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from reconciler.errors import ContentNotFound, StoreError
from reconciler.model.content import V1Content
from reconciler.model.digest import parse_recorded
from reconciler.model.reports import Problem
from reconciler.model.repository import ContentSummary, Publication, Repository, VersionInfo
from reconciler.model.v1image import V1Image, validate_image_id
from reconciler.store.sql.connection import Connection, chunks
from reconciler.store.sql.lookup import IN_VERSION

_SELECT = "SELECT image_id, json, ancestry, layer, size FROM v1_images"


def _image(row: tuple) -> V1Image:  # type: ignore[type-arg]
    return V1Image(row[0], bytes(row[1]), tuple(row[2].split()), parse_recorded(row[3]), int(row[4]))


def missing_parents(images: dict[str, str | None], content: V1Content) -> list[str]:
    """Problems: images whose parent is neither in ``content`` nor masked, tags whose
    image is not in ``content``. ``images`` maps each image id of ``content`` to its parent."""
    problems = []
    for image_id in sorted(content.images):
        parent = images.get(image_id)
        if parent is not None and parent not in content.images and parent not in content.masked:
            problems.append(f"v1 image {image_id} needs its parent {parent}, which the version lacks")
    for name, image_id in sorted(content.tags.items()):
        if image_id not in content.images:
            problems.append(f"v1 tag {name!r} points at image {image_id}, which the version lacks")
    return problems


class V1Images:
    """Mixed into ``SQLStore``; relies on its connections, transactions and
    ``repository_get``."""

    def _conn(self) -> Connection:  # provided by SQLStore
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Connection]:  # provided by SQLStore
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:  # provided by SQLStore
        raise NotImplementedError

    def repository_get(self, repo_id: str) -> Repository:  # provided by SQLStore
        raise NotImplementedError

    @staticmethod
    def _latest_at(conn: Connection, repo_id: str, base: int) -> int:  # provided by SQLStore
        raise NotImplementedError

    def v1_images_put(self, images: Sequence[V1Image]) -> None:
        if not images:
            return
        with self._write() as conn:
            layers = sorted({str(i.layer) for i in images})
            have: set[str] = set()
            for chunk in chunks(layers):
                have |= {r[0] for r in conn.execute(
                    f"SELECT digest FROM blobs WHERE digest IN ({','.join('?' * len(chunk))})", chunk)}
            lacking = [f"{i.id} (layer {i.layer})" for i in images if str(i.layer) not in have]
            if lacking:
                raise StoreError("v1 images refer to layer blobs that are not stored: " + ", ".join(lacking[:10]),
                                 hint="this is a bug in the operation: store the layer blobs first")
            conn.executemany(
                "INSERT INTO v1_images (image_id, parent, json, ancestry, layer, size) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(i.id, i.parent, i.json, " ".join(i.ancestry), str(i.layer), i.size) for i in images])

    def v1_image_get(self, image_id: str) -> V1Image:
        row = self._conn().execute(_SELECT + " WHERE image_id = ?", (image_id,)).fetchone()
        if row is None:
            raise ContentNotFound(f"v1 image {image_id} is not in the store")
        return _image(row)

    def v1_images_get(self, image_ids: Iterable[str]) -> dict[str, V1Image]:
        wanted = sorted(set(image_ids))
        out: dict[str, V1Image] = {}
        conn = self._conn()
        for chunk in chunks(wanted):
            for row in conn.execute(_SELECT + f" WHERE image_id IN ({','.join('?' * len(chunk))})", chunk):
                out[row[0]] = _image(row)
        return out

    def _v1_rows(self, conn: Connection, repo_id: str, number: int) -> V1Content:
        args = (repo_id, number, number)
        images: set[str] = set()
        masked: set[str] = set()
        for image_id, role in conn.execute(f"SELECT image_id, role FROM repo_v1_images WHERE {IN_VERSION}", args):
            (images if role == "image" else masked).add(image_id)
        tags = dict(conn.execute(f"SELECT name, image_id FROM repo_v1_tags WHERE {IN_VERSION}", args))
        return V1Content(frozenset(images), tags, frozenset(masked))

    def v1_version_get(self, repo_id: str, number: int | None = None) -> V1Content:
        with self._read() as conn:
            repo = self.repository_get(repo_id)
            n = repo.latest_version if number is None else number
            if n < 0 or n > repo.latest_version:
                raise ContentNotFound(f"repository {repo_id!r} has no version {n}",
                                      hint=f"see `reconciler repo history {repo_id}`")
            return self._v1_rows(conn, repo_id, n)

    def v1_versions_latest(self) -> dict[str, V1Content]:
        """Two scans of the live v1 rows instead of three queries per repository (a plan of
        thousands of repositories reads them all). At a repository's latest version the
        live rows are exactly those not yet removed. Repositories without v1 content are
        left out."""
        images: dict[str, set[str]] = {}
        masked: dict[str, set[str]] = {}
        tags: dict[str, dict[str, str]] = {}
        with self._read() as conn:
            for repo_id, image_id, role in conn.execute(
                    "SELECT repo_id, image_id, role FROM repo_v1_images WHERE removed IS NULL"):
                (images if role == "image" else masked).setdefault(repo_id, set()).add(image_id)
            for repo_id, name, image_id in conn.execute(
                    "SELECT repo_id, name, image_id FROM repo_v1_tags WHERE removed IS NULL"):
                tags.setdefault(repo_id, {})[name] = image_id
        return {r: V1Content(frozenset(images.get(r, ())), tags.get(r, {}), frozenset(masked.get(r, ())))
                for r in sorted(images.keys() | masked.keys() | tags.keys())}

    def v1_image_publications(self, image_id: str) -> list[Publication]:
        rows = self._conn().execute(
            "SELECT r.id, r.publish_name, r.published_version, r.protected FROM repositories r "
            "JOIN repo_v1_images i ON i.repo_id = r.id "
            "WHERE i.image_id = ? AND i.role = 'image' AND r.publish_name IS NOT NULL "
            "AND r.published_version IS NOT NULL AND i.added <= r.published_version "
            "AND (i.removed IS NULL OR i.removed > r.published_version) ORDER BY r.publish_name", (image_id,))
        return [Publication(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def v1_commit(self, repo_id: str, *, base: int, content: V1Content, operation: str) -> VersionInfo | None:
        for image_id in content.images | content.masked:
            validate_image_id(image_id)
        with self._write() as conn:
            latest = self._latest_at(conn, repo_id, base)
            old = self._v1_rows(conn, repo_id, latest)
            old_rows = {(i, "image") for i in old.images} | {(i, "mask") for i in old.masked}
            new_rows = {(i, "image") for i in content.images} | {(i, "mask") for i in content.masked}
            tags_removed = {n for n, i in old.tags.items() if content.tags.get(n) != i}
            tags_added = {n for n, i in content.tags.items() if old.tags.get(n) != i}
            if old_rows == new_rows and not tags_removed and not tags_added:
                return None
            self._v1_validate(conn, content, {i for i, role in new_rows - old_rows if role == "image"})
            new = latest + 1
            conn.executemany(f"UPDATE repo_v1_images SET removed = ? WHERE image_id = ? AND role = ? AND {IN_VERSION}",
                             [(new, i, role, repo_id, latest, latest) for i, role in sorted(old_rows - new_rows)])
            conn.executemany("INSERT INTO repo_v1_images (repo_id, image_id, role, added) VALUES (?, ?, ?, ?)",
                             [(repo_id, i, role, new) for i, role in sorted(new_rows - old_rows)])
            conn.executemany(f"UPDATE repo_v1_tags SET removed = ? WHERE name = ? AND {IN_VERSION}",
                             [(new, n, repo_id, latest, latest) for n in sorted(tags_removed)])
            conn.executemany("INSERT INTO repo_v1_tags (repo_id, name, image_id, added) VALUES (?, ?, ?, ?)",
                             [(repo_id, n, content.tags[n], new) for n in sorted(tags_added)])
            gone = old.images - content.images
            summary = ContentSummary(
                added={"v1_images": len(content.images - old.images), "v1_tags": len(tags_added)},
                removed={"v1_images": len(gone), "v1_tags": len(tags_removed)})
            created = datetime.now(UTC).isoformat(timespec="seconds")
            conn.execute("INSERT INTO versions (repo_id, number, created, operation, summary) VALUES (?, ?, ?, ?, ?)",
                         (repo_id, new, created, operation, json.dumps(summary.to_json())))
            conn.execute("UPDATE repositories SET latest_version = ? WHERE id = ?", (new, repo_id))
        return VersionInfo(repo_id, new, created, operation, summary)

    def _v1_validate(self, conn: Connection, content: V1Content, added: set[str]) -> None:
        parents: dict[str, str | None] = {}
        ids = sorted(content.images)
        for chunk in chunks(ids):
            parents.update(conn.execute(
                f"SELECT image_id, parent FROM v1_images WHERE image_id IN ({','.join('?' * len(chunk))})", chunk))
        problems = [f"v1 image {i} is not in the store" for i in sorted(added) if i not in parents]
        problems += missing_parents(parents, content)
        if problems:
            raise StoreError("refusing to commit an inconsistent repository version: "
                             + "; ".join(problems[:20]),
                             hint="this is a bug in the operation that built the version; nothing was changed")


def _live(n: int, added: int, removed: int | None) -> bool:
    return added <= n and (removed is None or removed > n)


def check_v1(conn: Connection, blobs: dict[str, int], numbers: Mapping[str, list[int]]) -> list[Problem]:
    """``store check`` for v1 content: every image's layer blob is stored, and every
    existing version (``numbers``: repository -> its version numbers) of every repository
    is complete (parents, tags)."""
    problems: list[Problem] = []
    images = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT image_id, parent, layer FROM v1_images")}
    for image_id, (_parent, layer) in sorted(images.items()):
        if layer not in blobs:
            problems.append(Problem("missing", image_id, f"v1 image layer blob {layer} is not in the store"))
    parents = {i: p for i, (p, _layer) in images.items()}
    for (repo_id,) in conn.execute("SELECT id FROM repositories ORDER BY id").fetchall():
        image_rows = conn.execute("SELECT image_id, role, added, removed FROM repo_v1_images WHERE repo_id = ?",
                                  (repo_id,)).fetchall()
        tag_rows = conn.execute("SELECT name, image_id, added, removed FROM repo_v1_tags WHERE repo_id = ?",
                                (repo_id,)).fetchall()
        if not image_rows and not tag_rows:
            continue
        for n in numbers.get(repo_id, ()):
            content = V1Content(frozenset(i for i, role, a, r in image_rows if role == "image" and _live(n, a, r)),
                                {name: i for name, i, a, r in tag_rows if _live(n, a, r)},
                                frozenset(i for i, role, a, r in image_rows if role == "mask" and _live(n, a, r)))
            where = f"{repo_id}@{n}"
            for image_id in sorted(content.images - set(parents)):
                problems.append(Problem("dangling", where, f"v1 image {image_id} is not in the store"))
            problems += [Problem("incomplete", where, p) for p in missing_parents(parents, content)]
    return problems


def gc_v1(conn: Connection, *, delete: bool = True) -> set[str]:
    """Inside gc's write transaction: delete images no repository version holds (unless
    ``delete`` is False: a dry run); return the layer digests of the images that remain
    (blobs gc must keep)."""
    referenced = {r[0] for r in conn.execute("SELECT DISTINCT image_id FROM repo_v1_images WHERE role = 'image'")}
    rows = conn.execute("SELECT image_id, layer FROM v1_images").fetchall()
    dead = [image_id for image_id, _ in rows if image_id not in referenced]
    if delete:
        for chunk in chunks(dead):
            conn.execute(f"DELETE FROM v1_images WHERE image_id IN ({','.join('?' * len(chunk))})", chunk)
    return {layer for image_id, layer in rows if image_id in referenced}
