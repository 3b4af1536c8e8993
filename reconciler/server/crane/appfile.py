"""Parse and validate one Crane app ("redirect") file, versions 1 to 4.

The JSON Pulp's publish (and ``reconciler export --format crane``) writes for Crane
(docs/original-system.md, "App file versions"): common keys ``version``,
``repo-registry-id``, ``url``, ``protected`` (optional, default false) and ``repository``
(the Pulp repository id, needed only by serve-content mode); v1 adds ``images`` and
``tags``; v3 adds ``schema2_data``; v4 adds ``manifest_list_data`` and
``manifest_list_amd64_tags``. Every error is a ``CraneDataInvalid`` whose message names
the file and the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.errors import CraneDataInvalid
from reconciler.model import jsonsafe

VERSIONS = (1, 2, 3, 4)


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
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise CraneDataInvalid(f"{path}: cannot read app file: {exc.strerror}") from exc
    return parse_app_file(raw, str(path))


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
    url = _string(doc, "url", where)
    protected = doc.get("protected", False)
    if not isinstance(protected, bool):
        raise CraneDataInvalid(f"{where}: 'protected' must be true or false, not {protected!r}")
    repository = doc.get("repository")
    if repository is not None and not isinstance(repository, str):
        raise CraneDataInvalid(f"{where}: 'repository' must be a string")
    common = AppFile(path=where, version=version, registry_id=registry_id, url=url, protected=protected,
                     repository=repository)
    if version == 1:
        return replace(common, images=_images(doc, where), tags=_str_map(doc, "tags", where))
    if version == 2:
        return common
    schema2 = frozenset(_str_list(doc, "schema2_data", where))
    if version == 3:
        return replace(common, schema2_data=schema2)
    return replace(common, schema2_data=schema2,
                   manifest_list_data=frozenset(_str_list(doc, "manifest_list_data", where)),
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


def _str_map(doc: Mapping[str, object], key: str, where: str) -> dict[str, str]:
    value = doc.get(key)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise CraneDataInvalid(f"{where}: {key!r} must be an object of strings")
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
        if not ok:
            raise CraneDataInvalid(f"{where}: manifest_list_amd64_tags[{tag!r}] must be [digest, 1 or 2], "
                                   f"not {entry!r}")
        out[tag] = (entry[0], entry[1])
    return out
