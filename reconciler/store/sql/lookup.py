"""Point lookups into one repository version, for the registry server and exports.

``version_get`` loads a whole version (every digest and tag); a server answering one
manifest GET needs one tag, one membership test and one manifest file, each an indexed
query. These methods do exactly that. Versions are immutable, so a caller that first
reads a publication (name -> repository, version) and then asks about that version sees a
consistent repository even while a new version is being published.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from reconciler.errors import ContentNotFound
from reconciler.model import Digest
from reconciler.model.content import Kind, ManifestRefs
from reconciler.model.digest import parse_recorded
from reconciler.model.referrers import Referrer
from reconciler.model.repository import Publication
from reconciler.store.sql import referrers
from reconciler.store.sql.connection import Connection

if TYPE_CHECKING:
    from reconciler.store.blobs import BlobStorage

#: from this many wanted digests on, manifest_refs scans the table instead of joining
_SCAN_ABOVE = 2000

#: rows of repo_content / repo_tags that are in version ?3 of repository ?1
IN_VERSION = "repo_id = ? AND added <= ? AND (removed IS NULL OR removed > ?)"


class VersionLookups:
    """Mixed into ``SQLStore``; relies on its ``_conn()`` and ``manifest_files``."""

    manifest_files: BlobStorage

    def _conn(self) -> Connection:  # provided by the backend
        raise NotImplementedError

    def publication_get(self, name: str) -> Publication | None:
        """The publication under ``name``, or None when nothing is published there."""
        row = self._conn().execute(
            "SELECT id, publish_name, published_version, protected FROM repositories "
            "WHERE publish_name = ? AND published_version IS NOT NULL", (name,)).fetchone()
        return Publication(row[0], row[1], row[2], bool(row[3])) if row else None

    def publication_tag(self, name: str, tag: str) -> tuple[Publication, Digest | None] | None:
        """The publication under ``name`` and what ``tag`` points at in its published
        version, in one statement (a manifest GET by tag: one round trip to a database
        server instead of two, and both read in the same snapshot); None when nothing is
        published there."""
        row = self._conn().execute(
            "SELECT r.id, r.publish_name, r.published_version, r.protected, t.digest FROM repositories r "
            "LEFT JOIN repo_tags t ON t.repo_id = r.id AND t.name = ? AND t.added <= r.published_version "
            "AND (t.removed IS NULL OR t.removed > r.published_version) "
            "WHERE r.publish_name = ? AND r.published_version IS NOT NULL", (tag, name)).fetchone()
        if row is None:
            return None
        return Publication(row[0], row[1], row[2], bool(row[3])), (Digest.parse(row[4]) if row[4] else None)

    def publication_list(self) -> list[Publication]:
        """Every publication, sorted by name."""
        rows = self._conn().execute(
            "SELECT id, publish_name, published_version, protected FROM repositories "
            "WHERE publish_name IS NOT NULL AND published_version IS NOT NULL ORDER BY publish_name")
        return [Publication(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def version_left_out(self, repo_id: str, version: int, digest: Digest) -> bool:
        """Whether that version deliberately lacks ``digest`` (a platform it did not mirror)."""
        return self._conn().execute(f"SELECT 1 FROM repo_absent WHERE digest = ? AND {IN_VERSION}",
                                    (str(digest), repo_id, version, version)).fetchone() is not None

    def version_tag(self, repo_id: str, version: int, name: str) -> Digest | None:
        """What tag ``name`` points at in that version, or None."""
        row = self._conn().execute(
            f"SELECT digest FROM repo_tags WHERE name = ? AND {IN_VERSION}",
            (name, repo_id, version, version)).fetchone()
        return Digest.parse(row[0]) if row else None

    def version_tag_names(self, repo_id: str, version: int, *, after: str | None = None,
                          limit: int | None = None) -> list[str]:
        """Tag names of that version in lexical (byte) order, those after ``after`` only,
        at most ``limit`` of them (the paging the tags/list endpoint needs)."""
        sql = f"SELECT name FROM repo_tags WHERE {IN_VERSION}"
        args: list[object] = [repo_id, version, version]
        if after is not None:
            sql += " AND name > ?"
            args.append(after)
        sql += " ORDER BY name"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [r[0] for r in self._conn().execute(sql, args)]

    def version_holds(self, repo_id: str, version: int, digest: Digest) -> Kind | None:
        """The kind of ``digest`` if that version holds it, else None."""
        row = self._conn().execute(
            f"SELECT kind FROM repo_content WHERE digest = ? AND {IN_VERSION}",
            (str(digest), repo_id, version, version)).fetchone()
        return Kind(row[0]) if row else None

    def version_referrers(self, repo_id: str, version: int, subject: Digest, *, artifact_type: str | None = None,
                          after: Digest | None = None, limit: int | None = None) -> list[Referrer]:
        """The referrers of ``subject`` that version holds, by digest (``sql/referrers.py``)."""
        return referrers.version_referrers(self._conn(), repo_id, version, subject, artifact_type=artifact_type,
                                           after=str(after) if after is not None else None, limit=limit)

    def manifest_refs(self, digests: Iterable[Digest]) -> dict[Digest, ManifestRefs]:
        """See the protocol. One row per manifest (its ``refs`` column). A few digests
        are looked up by primary key (``IN``); many (a plan of thousands of
        repositories) are cheaper as one scan filtered here."""
        wanted = set(digests)
        out: dict[Digest, ManifestRefs] = {}
        if not wanted:
            return out
        conn = self._conn()
        if len(wanted) >= _SCAN_ABOVE:
            # compare text, not Digests: a scan of 55,000 rows parsed each twice otherwise
            texts = {str(d) for d in wanted}
            rows = [r for r in conn.execute("SELECT digest, kind, refs FROM manifests") if r[0] in texts]
        else:
            # under _SCAN_ABOVE parameters: within SQLite's variable limit (32766 since 3.32) and PostgreSQL's (65535)
            rows = conn.execute(f"SELECT digest, kind, refs FROM manifests WHERE digest IN "
                                f"({','.join('?' * len(wanted))})", [str(d) for d in wanted]).fetchall()
        parse = parse_recorded
        kinds = {"b": Kind.BLOB, "m": Kind.MANIFEST, "i": Kind.INDEX}
        for digest, kind, refs in rows:
            tokens = refs.split() if refs else []
            if kind == "index":
                out[parse(digest)] = ManifestRefs(Kind.INDEX, tuple([parse(t[1:]) for t in tokens]),
                                                  tuple([kinds[t[0]] for t in tokens]))
            else:
                out[parse(digest)] = ManifestRefs(Kind.MANIFEST, tuple([parse(t[1:]) for t in tokens]))
        return out

    def manifest_subjects(self, digests: Iterable[Digest]) -> dict[Digest, tuple[Digest, str | None]]:
        """See the protocol: rows of ``manifest_subjects`` (only referrers have one), a
        scan filtered here when many digests are asked for, as ``manifest_refs``."""
        wanted = {str(d) for d in digests}
        if not wanted:
            return {}
        conn = self._conn()
        if len(wanted) >= _SCAN_ABOVE:
            rows = [r for r in conn.execute("SELECT digest, subject, artifact_type FROM manifest_subjects")
                    if r[0] in wanted]
        else:
            rows = conn.execute(f"SELECT digest, subject, artifact_type FROM manifest_subjects WHERE digest IN "
                                f"({','.join('?' * len(wanted))})", sorted(wanted)).fetchall()
        return {parse_recorded(d): (parse_recorded(s), t) for d, s, t in rows}

    def manifest_meta(self, digest: Digest) -> tuple[str, int] | None:
        """(media type, size) of a stored manifest or index from its row alone: what a
        HEAD needs, without reading the bytes (object storage may be down)."""
        row = self._conn().execute("SELECT media_type, size FROM manifests WHERE digest = ?",
                                   (str(digest),)).fetchone()
        return (row[0], int(row[1])) if row else None

    def manifest_raw(self, digest: Digest) -> tuple[str, bytes]:
        """(media type, exact bytes) of a stored manifest or index, without parsing."""
        row = self._conn().execute("SELECT media_type FROM manifests WHERE digest = ?", (str(digest),)).fetchone()
        if row is None:
            raise ContentNotFound(f"manifest {digest} is not in the store")
        try:
            with self.manifest_files.open(digest) as f:
                return row[0], f.read()
        except ContentNotFound:
            raise ContentNotFound(f"manifest {digest} is recorded but its bytes are missing from "
                                  f"{self.manifest_files.location}", hint="run `reconciler store check`") from None
