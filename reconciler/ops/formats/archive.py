"""A read-only file tree over an upload: a tar file (plain or compressed) or a directory.

Upload formats read members by name through this view, so they need not care whether
the user gave ``oci-archive:`` output or an OCI layout directory. Links inside the tree
are followed (Docker 25's ``docker save`` links ``<id>/layer.tar`` to ``blobs/...``) but
never outside it; tar members are checked by ``reconciler.ops.formats.tarsafe`` on open.
Members are streamed, never read whole, except small JSON documents under a size limit.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from pathlib import Path
from typing import IO, Any

from reconciler.errors import UploadInvalid
from reconciler.model import jsonsafe
from reconciler.ops.formats.tarsafe import (
    DEFAULT_LIMITS,
    REFUSED_HINT,
    Limits,
    check_member_name,
    check_members,
    compressed_size,
    normalize,
    safe_tarinfo,
)

_MAX_LINK_HOPS = 16


class Archive:
    """Base class: ``has``, ``size``, ``open`` and ``read_json`` by normalised name."""

    where: str
    limits: Limits

    def has(self, name: str) -> bool:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def names(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying file, if any."""

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_bytes(self, name: str, *, limit: int | None = None) -> bytes:
        limit = self.limits.json_bytes if limit is None else limit
        if self.size(name) > limit:
            raise UploadInvalid(f"{self.where}: {name} is larger than the {limit} byte limit for metadata files")
        with self.open(name) as f:
            return f.read(limit + 1)[:limit]

    def read_json(self, name: str) -> Any:
        data = self.read_bytes(name)
        try:
            return jsonsafe.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UploadInvalid(f"{self.where}: {name} is not valid JSON: {exc}") from exc


class TarArchive(Archive):
    def __init__(self, path: Path, *, limits: Limits = DEFAULT_LIMITS) -> None:
        self.where = str(path)
        self.limits = limits
        try:
            compressed = compressed_size(str(path))
            self._tf = tarfile.open(path, mode="r:*", tarinfo=safe_tarinfo(limits.header_bytes))
        except (tarfile.TarError, OSError) as exc:
            raise UploadInvalid(f"{path}: not a readable tar archive: {exc}", hint=REFUSED_HINT) from exc
        try:
            self._members = check_members(self._tf, where=self.where, limits=limits, compressed_bytes=compressed)
        except BaseException:
            self._tf.close()
            raise

    def close(self) -> None:
        self._tf.close()

    def _resolve(self, name: str) -> tarfile.TarInfo | None:
        name = normalize(name)
        for _ in range(_MAX_LINK_HOPS):
            info = self._members.get(name)
            if info is None or not (info.issym() or info.islnk()):
                return info if info is not None and info.isfile() else None
            base = posixpath.dirname(name) if info.issym() else ""
            name = normalize(posixpath.join(base, info.linkname))
        raise UploadInvalid(f"{self.where}: too many levels of links at {name!r}")

    def _get(self, name: str) -> tarfile.TarInfo:
        info = self._resolve(name)
        if info is None:
            raise UploadInvalid(f"{self.where}: no file {name!r} in the archive")
        return info

    def has(self, name: str) -> bool:
        return self._resolve(name) is not None

    def size(self, name: str) -> int:
        return self._get(name).size

    def open(self, name: str) -> IO[bytes]:
        f = self._tf.extractfile(self._get(name))
        if f is None:  # pragma: no cover - _get only returns regular files
            raise UploadInvalid(f"{self.where}: {name!r} is not a regular file")
        return f

    def names(self) -> list[str]:
        return sorted(n for n, i in self._members.items() if i.isfile() or i.issym() or i.islnk())


class DirArchive(Archive):
    def __init__(self, path: Path, *, limits: Limits = DEFAULT_LIMITS) -> None:
        self.where = str(path)
        self.limits = limits
        self._root = path.resolve()

    def _path(self, name: str) -> Path | None:
        p = (self._root / check_member_name(name, where=self.where)).resolve()
        # a link inside the directory must not lead out of it
        if p != self._root and self._root not in p.parents:
            raise UploadInvalid(f"{self.where}: {name!r} leads outside the directory",
                                hint="remove links that point outside the image layout; nothing was stored")
        return p if p.is_file() else None

    def _get(self, name: str) -> Path:
        p = self._path(name)
        if p is None:
            raise UploadInvalid(f"{self.where}: no file {name!r} in the directory")
        return p

    def has(self, name: str) -> bool:
        return self._path(name) is not None

    def size(self, name: str) -> int:
        size = self._get(name).stat().st_size
        if size > self.limits.member_bytes:
            raise UploadInvalid(f"{self.where}: {name!r} is {size} bytes, more than the "
                                f"{self.limits.member_bytes} byte limit")
        return size

    def open(self, name: str) -> IO[bytes]:
        return open(self._get(name), "rb")

    def names(self) -> list[str]:
        return sorted(str(p.relative_to(self._root)) for p in self._root.rglob("*") if p.is_file())


def open_archive(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> Archive:
    return DirArchive(path, limits=limits) if path.is_dir() else TarArchive(path, limits=limits)
