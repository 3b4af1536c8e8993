"""Turns a validated document into the frozen ``DesiredState``, merging defaults once.

Only called when validation found nothing, so every value has its schema shape here.
Merging is key by key: a repository's own value replaces the default whole (its ``tags``
filter is not combined with the default filter). Sync-only settings (filter, mirror,
allow_empty, platforms, referrers) are reset for repositories without a feed, so the frozen values never claim
a behaviour that cannot happen.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.desired.model import (
    ALL,
    CopySpec,
    DesiredState,
    PushSpec,
    Removal,
    RepositorySpec,
    Selection,
    TagPin,
    Upload,
    VerifyPolicy,
)
from reconciler.desired.semantic import BUNDLE_FEED, effective, effective_feed, parse_pin
from reconciler.desired.yamlpos import Positions
from reconciler.model import Digest
from reconciler.model.platforms import PlatformFilter
from reconciler.model.referrers import ReferrerPolicy
from reconciler.model.registry import RegistryConfig
from reconciler.model.signatures import parse_key
from reconciler.model.tagfilter import TagFilter

_REGISTRY_OPTIONS = ("auth_file", "tls_verify", "ca_file", "client_cert", "client_key", "max_concurrency",
                     "timeout", "retries")
_PATH_OPTIONS = ("auth_file", "ca_file", "client_cert", "client_key")


def _resolve(path: str, base_dir: Path) -> str:
    return str((base_dir / os.path.expanduser(path)).resolve())


def _registry(name: str, url: str, entry: dict[str, Any], defaults: dict[str, Any], base_dir: Path) -> RegistryConfig:
    options: dict[str, Any] = {k: entry.get(k, defaults.get(k)) for k in _REGISTRY_OPTIONS
                               if k in entry or k in defaults}
    for k in _PATH_OPTIONS:
        if options.get(k):
            options[k] = _resolve(str(options[k]), base_dir)
    return RegistryConfig(name=name, url=url.rstrip("/"), username_env=entry.get("username_env"),
                        password_env=entry.get("password_env"), **options)


def _selection(value: Any) -> Selection:
    return ALL if value == ALL else tuple(value or ())


def _filter(value: dict[str, Any] | None) -> TagFilter:
    value = value or {}
    return TagFilter(tuple(value.get("include", ())), tuple(value.get("exclude", ())), semver=value.get("semver"),
                     semver_suffix=value.get("semver_suffix"), prereleases=bool(value.get("prereleases", False)),
                     latest=value.get("latest"), sort=value.get("sort", "semver"))


def _referrers(value: bool | dict[str, Any] | None) -> ReferrerPolicy:
    """``referrers:``: absent or true takes every referrer, false none, a mapping some types."""
    if isinstance(value, dict):
        return ReferrerPolicy(True, tuple(value["artifact_types"]))
    return ReferrerPolicy(value is not False)


def _verify(value: dict[str, Any] | None, base_dir: Path) -> VerifyPolicy | None:
    """``verify:``: the keys, read where repos.yaml says (the checks made sure they parse);
    each named as written, so the plan's reasons say ``keys/release.pub``."""
    if not value:
        return None
    return VerifyPolicy(tuple(parse_key((base_dir / os.path.expanduser(name)).read_bytes(), name)
                              for name in value["cosign_keys"]))


def _platforms(value: list[str] | None) -> PlatformFilter | None:
    return PlatformFilter.parse(value) if value else None


def _push_tags(value: Any) -> TagFilter:
    if value is None or value == ALL:
        return TagFilter()
    if isinstance(value, list):
        return TagFilter(tuple(value))
    return _filter(value)


def _pushes(value: list[dict[str, Any]], registries: dict[str, RegistryConfig]) -> tuple[PushSpec, ...]:
    return tuple(PushSpec(registries[p["registry"]], p["name"], _push_tags(p.get("tags")), bool(p.get("prune", False)))
                 for p in value)


def _pins(value: dict[str, str]) -> tuple[TagPin, ...]:
    out = []
    for name, text in value.items():
        target = parse_pin(text)
        if isinstance(target, Digest):
            out.append(TagPin(name, digest=target))
        else:
            out.append(TagPin(name, source_repo=target[0], source_tag=target[1]))
    return tuple(out)


def _repository(repo_id: str, repo: dict[str, Any], defaults: dict[str, Any], registries: dict[str, RegistryConfig],
                registry_defaults: dict[str, Any], base_dir: Path) -> RepositorySpec:
    feed_text = effective_feed(repo, defaults)
    feed: RegistryConfig | None = None
    if isinstance(feed_text, str) and feed_text.startswith(BUNDLE_FEED):
        # a bundle file or folder, read where repos.yaml says (relative to it)
        feed = RegistryConfig(name=feed_text, url=BUNDLE_FEED + _resolve(feed_text[len(BUNDLE_FEED):], base_dir))
    elif feed_text is not None:
        feed = registries.get(feed_text) or _registry(feed_text, feed_text, {}, registry_defaults, base_dir)
    remove = repo.get("remove", {})
    return RepositorySpec(
        id=repo_id,
        feed=feed,
        upstream_name=repo.get("upstream_name"),
        tag_filter=_filter(effective(repo, defaults, "tags")) if feed else TagFilter(),
        mirror=bool(effective(repo, defaults, "mirror", False)) if feed else False,
        allow_empty=bool(effective(repo, defaults, "allow_empty", False)) if feed else False,
        platforms=_platforms(effective(repo, defaults, "platforms")) if feed else None,
        referrers=_referrers(effective(repo, defaults, "referrers")) if feed else ReferrerPolicy(False),
        enable_v1=bool(repo.get("enable_v1", False)) if feed else False,
        uploads=tuple(Upload((base_dir / u["file"]).resolve(), u.get("tag"), bool(u.get("v1", False)), u.get("mask_id"))
                      for u in repo.get("uploads", ())),
        copies=tuple(CopySpec(c["from"], _selection(c.get("tags", ())), _selection(c.get("manifests", ())),
                              _selection(c.get("indexes", ())), _platforms(c.get("platforms")),
                              _referrers(c.get("referrers")))
                     for c in repo.get("copy", ())),
        pins=_pins(repo.get("pins", {})),
        remove=Removal(tuple(remove.get("tags", ())), tuple(Digest.parse(d) for d in remove.get("manifests", ())),
                       tuple(Digest.parse(d) for d in remove.get("indexes", ()))),
        prune=bool(effective(repo, defaults, "prune", False)),
        publish=repo.get("publish"),
        protected=bool(effective(repo, defaults, "protected", False)),
        retain_versions=effective(repo, defaults, "retain_versions"),
        push=_pushes(repo.get("push", []), registries),
        verify=_verify(repo.get("verify"), base_dir),
    )


def build_state(data: dict[str, Any], path: Path, digest: str, *, positions: Positions | None = None,
                file: str = "") -> DesiredState:
    base_dir = path.parent
    defaults = data.get("defaults", {})
    registry_defaults = defaults.get("registry", {})
    registries = {name: _registry(name, entry["url"], entry, registry_defaults, base_dir)
                  for name, entry in data.get("registries", {}).items()}
    repositories = {repo_id: _repository(repo_id, repo or {}, defaults, registries, registry_defaults, base_dir)
                    for repo_id, repo in data["repositories"].items()}
    return DesiredState(path=path, digest=digest, version=data["version"],
                        registries=MappingProxyType(registries), repositories=MappingProxyType(repositories),
                        positions=positions, file=file)
