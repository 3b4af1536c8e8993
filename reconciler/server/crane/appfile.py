"""Parse and validate one Crane app ("redirect") file, versions 1 to 4.

The JSON Pulp's publish (and ``reconciler export --format crane``) writes for Crane
(docs/original-system.md, "App file versions"): common keys ``version``,
``repo-registry-id``, ``url``, ``protected`` (optional, default false) and ``repository``
(the Pulp repository id, needed only by serve-content mode); v1 adds ``images`` and
``tags``; v3 adds ``schema2_data``; v4 adds ``manifest_list_data`` and
``manifest_list_amd64_tags``.
Every error is a ``CraneDataInvalid`` whose message names the file and the key.

Everything in an app file that later becomes part of a file path or a redirect URL is
checked here with the model's validators, so a hostile or broken file is skipped whole
instead of serving ``../../etc/passwd``: ``repo-registry-id`` is a repository name, every
entry of ``schema2_data`` / ``manifest_list_data`` a tag or a digest, every
``manifest_list_amd64_tags`` key a tag and value a digest, v1 image ids 64 hex digits
and v1 tag names tags; ``url`` is an ``http(s)://`` URL or an absolute path of visible
ASCII characters. Only a regular file of at most ``MAX_APP_FILE`` bytes is read (opened
without blocking, so a FIFO cannot hang the server and ``/dev/zero`` cannot fill memory).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.errors import CraneDataInvalid, InvalidInput
from reconciler.model import Digest, jsonsafe, validate_repository_name
from reconciler.model.reference import is_valid_tag
from reconciler.model.v1image import is_image_id

VERSIONS = (1, 2, 3, 4)
#: the largest app file read (Pulp's for a repository of 100,000 manifests is ~10 MB)
MAX_APP_FILE = 32 * 1024 * 1024
#: ``url``: http(s) with a host, or an absolute path; visible ASCII only (it goes into ``Location``)
_URL = re.compile(r"(?:https?://[!-~]+|/[!-~]*)")


@dataclass(frozen=True)
class AppFile:
    """One loaded app file. ``schema2_data`` is None for versions 1 and 2 (the flat
    pre-2.4 layout, 11.4 step 1); the other data fields are empty when absent."""

    path: str
    version: int
    registry_id: str
    url: str
    protected: bool = False
    repository: str | None = None
    images: tuple[str, ...] = ()                      # v1: image ids
    tags: Mapping[str, str] = field(default_factory=dict)  # v1: tag -> image id
    schema2_data: frozenset[str] | None = None        # v3/v4: digests and tags of schema2 manifests
    manifest_list_data: frozenset[str] = frozenset()  # v4: digests and tags of lists
    amd64_tags: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # v4: tag -> (digest, 1|2)

    @property
    def is_v1(self) -> bool:
        return self.version == 1

    @property
    def url_path(self) -> str:
        return urlsplit(self.url).path


def load_app_file(path: str | Path) -> AppFile:
    """Read and validate ``path``; raises ``CraneDataInvalid`` naming the file."""
    return parse_app_file(read_app_file(path), str(path))


def read_app_file(path: str | Path) -> bytes:
    """The bytes of ``path`` if it is a regular file (symlinks followed) of at most
    ``MAX_APP_FILE`` bytes; ``CraneDataInvalid`` otherwise. Opened with ``O_NONBLOCK``: a
    FIFO (or a device) is refused at once instead of blocking the server."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise CraneDataInvalid(f"{path}: cannot read app file: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise CraneDataInvalid(f"{path}: not a regular file (a {_kind(st.st_mode)})",
                                       hint="app files are the JSON files Pulp's publish writes")
            raw = f.read(MAX_APP_FILE + 1)
        except OSError as exc:
            raise CraneDataInvalid(f"{path}: cannot read app file: {exc.strerror}") from exc
    if len(raw) > MAX_APP_FILE:
        raise CraneDataInvalid(f"{path}: over {MAX_APP_FILE // (1024 * 1024)} MiB, too large for an app file")
    return raw


def _kind(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "FIFO", stat.S_ISCHR: "character device", stat.S_ISBLK: "block device",
             stat.S_ISSOCK: "socket", stat.S_ISDIR: "directory"}
    return next((name for test, name in kinds.items() if test(mode)), "special file")


def parse_app_file(raw: bytes, where: str) -> AppFile:
    try:
        doc = jsonsafe.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CraneDataInvalid(f"{where}: not valid JSON: {exc}",
                               hint="a Crane app file is the JSON object Pulp's publish or "
                                    "`reconciler export --format crane` writes") from exc
    if not isinstance(doc, dict):
        raise CraneDataInvalid(f"{where}: an app file must be a JSON object, not {type(doc).__name__}")
    version = doc.get("version")
    if type(version) is not int or version not in VERSIONS:
        raise CraneDataInvalid(f"{where}: version {version!r} not supported",
                               hint="Crane app files have version 1, 2, 3 or 4")
    registry_id = _string(doc, "repo-registry-id", where)
    try:
        validate_repository_name(registry_id, what="repo-registry-id")
    except InvalidInput as exc:
        raise CraneDataInvalid(f"{where}: {exc.message}", hint=exc.hint) from None
    url = _string(doc, "url", where)
    if not _URL.fullmatch(url):
        raise CraneDataInvalid(f"{where}: 'url' {url[:200]!r} is not an http(s) URL or an absolute path "
                               "of visible ASCII characters (percent-encode anything else)")
    protected = doc.get("protected", False)
    if not isinstance(protected, bool):
        raise CraneDataInvalid(f"{where}: 'protected' must be true or false, not {protected!r}")
    repository = doc.get("repository")
    if repository is not None and not isinstance(repository, str):
        raise CraneDataInvalid(f"{where}: 'repository' must be a string")
    common = AppFile(path=where, version=version, registry_id=registry_id, url=url, protected=protected,
                     repository=repository)
    if version == 1:
        return replace(common, images=_images(doc, where), tags=_v1_tags(doc, where))
    if version == 2:
        return common
    schema2 = frozenset(_references(doc, "schema2_data", where))
    if version == 3:
        return replace(common, schema2_data=schema2)
    return replace(common, schema2_data=schema2,
                   manifest_list_data=frozenset(_references(doc, "manifest_list_data", where)),
                   amd64_tags=_amd64(doc, where))


def _string(doc: Mapping[str, object], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise CraneDataInvalid(f"{where}: {key!r} is missing or not a non-empty string")
    return value


def _str_list(doc: Mapping[str, object], key: str, where: str) -> list[str]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CraneDataInvalid(f"{where}: {key!r} must be a list of strings (version {doc['version']})")
    return value


def _is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except InvalidInput:
        return False
    return True


def _references(doc: Mapping[str, object], key: str, where: str) -> list[str]:
    """A list of tags and digests (they become ``manifests/<n>/<ref>`` paths)."""
    refs = _str_list(doc, key, where)
    for i, ref in enumerate(refs):
        if not (is_valid_tag(ref) or _is_digest(ref)):
            raise CraneDataInvalid(f"{where}: {key}[{i}] = {ref[:200]!r} is neither a tag nor a sha256/sha512 digest")
    return refs


def _v1_tags(doc: Mapping[str, object], where: str) -> dict[str, str]:
    value = doc.get("tags")
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise CraneDataInvalid(f"{where}: 'tags' must be an object of strings")
    for tag, image_id in value.items():
        if not is_valid_tag(tag):
            raise CraneDataInvalid(f"{where}: tags: {tag[:200]!r} is not a valid tag name")
        if not is_image_id(image_id):
            raise CraneDataInvalid(f"{where}: tags[{tag!r}] = {image_id[:200]!r} is not a v1 image id (64 hex digits)")
    return dict(value)


def _images(doc: Mapping[str, object], where: str) -> tuple[str, ...]:
    value = doc.get("images")
    if not isinstance(value, list):
        raise CraneDataInvalid(f"{where}: 'images' must be a list of {{\"id\": ...}} objects (version 1)")
    ids = []
    for i, entry in enumerate(value):
        image_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(image_id, str) or not image_id:
            raise CraneDataInvalid(f"{where}: images[{i}] has no string 'id'")
        if not is_image_id(image_id):
            raise CraneDataInvalid(f"{where}: images[{i}] id {image_id[:200]!r} is not a v1 image id (64 hex digits)")
        ids.append(image_id)
    return tuple(ids)


def _amd64(doc: Mapping[str, object], where: str) -> dict[str, tuple[str, int]]:
    value = doc.get("manifest_list_amd64_tags")
    if not isinstance(value, dict):
        raise CraneDataInvalid(f"{where}: 'manifest_list_amd64_tags' must be an object (version 4)")
    out = {}
    for tag, entry in value.items():
        ok = (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
              and type(entry[1]) is int and entry[1] in (1, 2))
        if not ok or not is_valid_tag(tag) or not _is_digest(entry[0]):
            raise CraneDataInvalid(f"{where}: manifest_list_amd64_tags[{tag[:200]!r}] must be [digest, 1 or 2] "
                                   f"under a valid tag, not {str(entry)[:200]}")
        out[tag] = (entry[0], entry[1])
    return out
