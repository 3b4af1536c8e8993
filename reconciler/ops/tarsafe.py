"""Safety checks for uploaded tar files, run over every member header before anything
is stored.

Refused, each with a message naming the member: absolute paths, ``..`` components,
symbolic or hard links whose target leaves the archive, character/block devices and
FIFOs, members larger than ``Limits.member_bytes``, archives whose members add up to
more than ``Limits.total_bytes`` or have more than ``Limits.members`` entries, and
malformed or truncated tar data. We never extract to disk: members are streamed to the
store by name, so these checks are what stands between a hostile file and the store.
"""

from __future__ import annotations

import posixpath
import tarfile
from dataclasses import dataclass

from reconciler.errors import UploadInvalid

GiB = 1024 ** 3


@dataclass(frozen=True)
class Limits:
    member_bytes: int = 32 * GiB
    total_bytes: int = 128 * GiB
    members: int = 100_000
    #: JSON documents (manifest.json, index.json, configs) are read into memory
    json_bytes: int = 16 * 1024 * 1024


DEFAULT_LIMITS = Limits()
_HINT = "upload files made by skopeo, docker save or an OCI tool; this archive was refused and nothing was stored"


def normalize(name: str) -> str:
    """``./a/b`` and ``a//b/`` -> ``a/b``; the root itself -> ``""``."""
    norm = posixpath.normpath(name) if name else ""
    return "" if norm == "." else norm


def _escapes(path: str) -> bool:
    return path.startswith("/") or path == ".." or path.startswith("../")


def check_member_name(name: str, *, where: str) -> str:
    """The normalised name, or ``UploadInvalid`` for absolute or ``..`` paths."""
    if name.startswith("/"):
        raise UploadInvalid(f"{where}: member {name!r} has an absolute path", hint=_HINT)
    if ".." in name.split("/"):
        raise UploadInvalid(f"{where}: member {name!r} contains '..'", hint=_HINT)
    return normalize(name)


def check_members(tf: tarfile.TarFile, *, where: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, tarfile.TarInfo]:
    """Every member of ``tf`` checked; returns ``normalised name -> TarInfo`` (the last
    of duplicated names wins, as tar extraction would)."""
    members: dict[str, tarfile.TarInfo] = {}
    total = 0
    count = 0
    try:
        # iterate lazily so an absurd header is refused before tarfile seeks past it
        for info in tf:
            count += 1
            if count > limits.members:
                raise UploadInvalid(f"{where}: more than {limits.members} members", hint=_HINT)
            name = check_member_name(info.name, where=where)
            if info.ischr() or info.isblk() or info.isfifo():
                raise UploadInvalid(f"{where}: member {info.name!r} is a device or FIFO", hint=_HINT)
            if info.issym() or info.islnk():
                _check_link(info, name, where=where)
            elif not (info.isfile() or info.isdir()):
                raise UploadInvalid(f"{where}: member {info.name!r} has unsupported type {info.type!r}", hint=_HINT)
            if info.size > limits.member_bytes:
                raise UploadInvalid(f"{where}: member {info.name!r} is {info.size} bytes, more than the "
                                    f"{limits.member_bytes} byte limit", hint=_HINT)
            total += info.size
            if total > limits.total_bytes:
                raise UploadInvalid(f"{where}: members add up to more than the {limits.total_bytes} byte limit",
                                    hint=_HINT)
            if name:
                members[name] = info
    except tarfile.TarError as exc:
        raise UploadInvalid(f"{where}: not a readable tar archive: {exc}", hint=_HINT) from exc
    except (EOFError, OSError) as exc:
        raise UploadInvalid(f"{where}: truncated or unreadable tar archive: {exc}", hint=_HINT) from exc
    return members


def _check_link(info: tarfile.TarInfo, name: str, *, where: str) -> None:
    target = info.linkname
    if not target or target.startswith("/"):
        raise UploadInvalid(f"{where}: link {info.name!r} points at absolute path {target!r}", hint=_HINT)
    # symlink targets are relative to the link's directory; hard links to the archive root
    base = posixpath.dirname(name) if info.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if _escapes(resolved):
        raise UploadInvalid(f"{where}: link {info.name!r} -> {target!r} points outside the archive", hint=_HINT)
