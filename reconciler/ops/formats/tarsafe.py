"""Safety checks for uploaded tar files, run over every member header before anything
is stored.

Refused, each with a message naming the member: absolute paths, ``..`` components,
symbolic or hard links whose target leaves the archive, character/block devices and
FIFOs, members larger than ``Limits.member_bytes``, archives whose members add up to
more than ``Limits.total_bytes`` or have more than ``Limits.members`` entries, and
malformed or truncated tar data.

Compressed archives (gzip, bzip2, xz) are bounded by their compression ratio as well:
once the headers declare more than ``Limits.ratio`` times the compressed file's size
(and more than ``Limits.ratio_floor``), the archive is refused at that header, before
the member is decompressed (a "gzip bomb": a few kilobytes that decompress to
terabytes). Extended headers (pax, GNU long names), which ``tarfile`` reads into
memory whole, are refused above ``Limits.header_bytes`` before they are read. We never extract to disk: members are streamed to the
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
    #: a compressed archive may declare at most this many times its own size ...
    ratio: int = 100
    #: ... but always this much (a small archive of sparse, zero-filled layers is legitimate)
    ratio_floor: int = 1 * GiB
    #: pax and GNU long-name headers are held in memory by tarfile
    header_bytes: int = 1024 * 1024

    def declared_cap(self, compressed_bytes: int | None) -> int:
        """How many bytes an archive may declare: ``total_bytes``, and for a compressed
        archive of ``compressed_bytes`` also the ratio bound."""
        if compressed_bytes is None:
            return self.total_bytes
        return min(self.total_bytes, max(self.ratio_floor, self.ratio * compressed_bytes))


DEFAULT_LIMITS = Limits()
_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def compressed_size(path: str) -> int | None:
    """The file's size when it is gzip, bzip2 or xz compressed; None for a plain tar."""
    with open(path, "rb") as f:
        head = f.read(6)
        if not head.startswith(_MAGIC):
            return None
        return f.seek(0, 2)


class _ExtendedHeaderTooLarge(tarfile.HeaderError):
    pass


def safe_tarinfo(header_bytes: int) -> type[tarfile.TarInfo]:
    """A ``TarInfo`` class that refuses extended headers (pax, GNU long names) larger
    than ``header_bytes`` before tarfile reads them into memory."""

    class CheckedTarInfo(tarfile.TarInfo):
        def _proc_gnulong(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
            self._check_extended()
            return super()._proc_gnulong(tf)  # type: ignore[misc,no-any-return]

        def _proc_pax(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
            self._check_extended()
            return super()._proc_pax(tf)  # type: ignore[misc,no-any-return]

        def _check_extended(self) -> None:
            if self.size > header_bytes:
                raise _ExtendedHeaderTooLarge(f"an extended header of {self.size} bytes, more than the "
                                              f"{header_bytes} byte limit")

    return CheckedTarInfo
REFUSED_HINT = "upload files made by skopeo, docker save or an OCI tool; this archive was refused and nothing was stored"


def normalize(name: str) -> str:
    """``./a/b`` and ``a//b/`` -> ``a/b``; the root itself -> ``""``."""
    norm = posixpath.normpath(name) if name else ""
    return "" if norm == "." else norm


def _escapes(path: str) -> bool:
    return path.startswith("/") or path == ".." or path.startswith("../")


def check_member_name(name: str, *, where: str) -> str:
    """The normalised name, or ``UploadInvalid`` for absolute or ``..`` paths."""
    if name.startswith("/"):
        raise UploadInvalid(f"{where}: member {name!r} has an absolute path", hint=REFUSED_HINT)
    if ".." in name.split("/"):
        raise UploadInvalid(f"{where}: member {name!r} contains '..'", hint=REFUSED_HINT)
    return normalize(name)


def check_members(tf: tarfile.TarFile, *, where: str, limits: Limits = DEFAULT_LIMITS,
                  compressed_bytes: int | None = None) -> dict[str, tarfile.TarInfo]:
    """Every member of ``tf`` checked; returns ``normalised name -> TarInfo`` (the last
    of duplicated names wins, as tar extraction would). ``compressed_bytes`` is the
    compressed file's size (None for a plain tar) for the ratio bound."""
    members: dict[str, tarfile.TarInfo] = {}
    cap = limits.declared_cap(compressed_bytes)
    total = 0
    count = 0
    try:
        # iterate lazily so an absurd header is refused before tarfile seeks past it
        for info in tf:
            count += 1
            if count > limits.members:
                raise UploadInvalid(f"{where}: more than {limits.members} members", hint=REFUSED_HINT)
            name = check_member_name(info.name, where=where)
            if info.ischr() or info.isblk() or info.isfifo():
                raise UploadInvalid(f"{where}: member {info.name!r} is a device or FIFO", hint=REFUSED_HINT)
            if info.issym() or info.islnk():
                _check_link(info, name, where=where)
            elif not (info.isfile() or info.isdir()):
                raise UploadInvalid(f"{where}: member {info.name!r} has unsupported type {info.type!r}", hint=REFUSED_HINT)
            if info.size > limits.member_bytes:
                raise UploadInvalid(f"{where}: member {info.name!r} is {info.size} bytes, more than the "
                                    f"{limits.member_bytes} byte limit", hint=REFUSED_HINT)
            total += info.size + tarfile.BLOCKSIZE
            if total > cap:
                if cap < limits.total_bytes:
                    raise UploadInvalid(
                        f"{where}: members add up to more than {cap} bytes, over {limits.ratio} times the "
                        f"{compressed_bytes} byte compressed file (a decompression bomb?)", hint=REFUSED_HINT)
                raise UploadInvalid(f"{where}: members add up to more than the {limits.total_bytes} byte limit",
                                    hint=REFUSED_HINT)
            if name:
                members[name] = info
    except tarfile.TarError as exc:
        raise UploadInvalid(f"{where}: not a readable tar archive: {exc}", hint=REFUSED_HINT) from exc
    except (EOFError, OSError) as exc:
        raise UploadInvalid(f"{where}: truncated or unreadable tar archive: {exc}", hint=REFUSED_HINT) from exc
    return members


def _check_link(info: tarfile.TarInfo, name: str, *, where: str) -> None:
    target = info.linkname
    if not target or target.startswith("/"):
        raise UploadInvalid(f"{where}: link {info.name!r} points at absolute path {target!r}", hint=REFUSED_HINT)
    # symlink targets are relative to the link's directory; hard links to the archive root
    base = posixpath.dirname(name) if info.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if _escapes(resolved):
        raise UploadInvalid(f"{where}: link {info.name!r} -> {target!r} points outside the archive", hint=REFUSED_HINT)
