"""Semantic checks, part one: references, feeds, files, patterns and secrets.

The schema says what shape each value has; these checks say whether the values make sense
together: a ``feed`` names a registry that exists, a ``from`` names a repository in the
file, an upload file exists, a tag pattern compiles, an ``*_env`` value is a variable
name rather than a pasted token. They run on whatever the schema let through and skip
values of the wrong type (the schema already reported those), so that one run reports
every problem.
"""

from __future__ import annotations

import re
from pathlib import Path as FsPath
from typing import Any

from reconciler.desired.diagnostics import Path
from reconciler.desired.reporter import Reporter
from reconciler.desired.schema import upstream_name_message
from reconciler.errors import InvalidInput
from reconciler.model import Digest
from reconciler.model.digest import ALGORITHMS
from reconciler.model.platforms import parse_platform
from reconciler.model.reference import NAME_RE, is_valid_tag
from reconciler.model.signatures import parse_key
from reconciler.model.tagfilter import compile_pattern, valid_patterns
from reconciler.model.tagversion import compile_range

_URL = re.compile(r"^https?://")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
#: prefixes of well-known token formats (GitHub, GitLab, Docker Hub, AWS, Slack)
_TOKEN_PREFIXES = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat", "dckr_pat_", "AKIA", "xox")


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def is_url(value: str) -> bool:
    return bool(_URL.match(value))


def looks_like_secret(value: str) -> bool:
    """A value in an ``*_env`` field that is shaped like a token rather than a variable name."""
    if value.startswith(_TOKEN_PREFIXES):
        return True
    return len(value) >= 20 and any(c.islower() for c in value) and any(c.isupper() for c in value) \
        and any(c.isdigit() for c in value)


def parse_pin(value: str) -> tuple[str, str] | Digest:
    """``REPO:TAG`` -> (repo, tag); ``sha256:<hex>`` -> Digest; else ``InvalidInput``."""
    head, sep, tail = value.partition(":")
    if not sep:
        raise InvalidInput(f"invalid pin {value!r}: expected REPO:TAG or sha256:<hex>")
    if head in ALGORITHMS:
        return Digest.parse(value)
    if not is_valid_tag(tail):
        raise InvalidInput(f"invalid pin {value!r}: {tail!r} is not a valid tag")
    return head, tail


def effective(repo: dict[str, Any], defaults: dict[str, Any], key: str, fallback: Any = None) -> Any:
    """A repository's own value, else the default (merged once, key by key)."""
    return repo[key] if key in repo else defaults.get(key, fallback)


def effective_feed(repo: dict[str, Any], defaults: dict[str, Any]) -> Any:
    """The default feed applies only to repositories that name an upstream."""
    if "feed" in repo:
        return repo["feed"]
    return defaults.get("feed") if "upstream_name" in repo else None


def check_references(data: dict[str, Any], rep: Reporter, base_dir: FsPath) -> None:
    registries = as_dict(data.get("registries"))
    repositories = as_dict(data.get("repositories"))
    defaults = as_dict(data.get("defaults"))
    _check_registries(registries, rep)
    _check_filter(defaults.get("tags"), ("defaults", "tags"), rep)
    _check_platforms(defaults.get("platforms"), ("defaults", "platforms"), rep)
    if isinstance(defaults.get("feed"), str):
        _check_feed(defaults["feed"], ("defaults", "feed"), registries, rep, base_dir)
    for repo_id, repo in repositories.items():
        if isinstance(repo, dict):
            _check_repository(repo_id, repo, defaults, registries, repositories, rep, base_dir)
    _check_pushes(repositories, registries, rep)


def _check_pushes(repositories: dict[str, Any], registries: dict[str, Any], rep: Reporter) -> None:
    """A push target names a ``registries:`` entry, and no two targets (in one repository
    or across them) push to the same repository of the same registry: each would undo
    the other's tags on every apply."""
    seen: dict[tuple[str, str], str] = {}
    for repo_id, repo in repositories.items():
        for i, target in enumerate(as_list(as_dict(repo).get("push"))):
            here: Path = ("repositories", repo_id, "push", i)
            registry, name = as_dict(target).get("registry"), as_dict(target).get("name")
            if not isinstance(registry, str):
                continue
            if registry not in registries:
                if _ID.fullmatch(registry):
                    known = ", ".join(sorted(registries)) or "none defined"
                    rep.value(here + ("registry",), f"unknown registry {registry!r}: a push target names a "
                                                    f"registries entry (known: {known})")
                continue
            tags = as_dict(target).get("tags")
            if isinstance(tags, dict):
                _check_filter(tags, here + ("tags",), rep)
            for j, pattern in enumerate(as_list(tags)):
                if isinstance(pattern, str) and pattern:
                    try:
                        compile_pattern(pattern)
                    except InvalidInput as exc:
                        rep.value(here + ("tags", j), _with_hint(exc))
            if not isinstance(name, str):
                continue
            url = str(as_dict(registries[registry]).get("url", registry)).rstrip("/")
            other = seen.setdefault((url, name), f"{repo_id} push {i}")
            if other != f"{repo_id} push {i}":
                rep.value(here + ("name",), f"{registry}/{name} is already a push target of {other.replace(' push ', ' (push entry ')})"
                                            "; two targets would overwrite each other's tags")


def _check_registries(registries: dict[str, Any], rep: Reporter) -> None:
    for name, reg in registries.items():
        for key in ("username_env", "password_env"):
            value = as_dict(reg).get(key)
            if isinstance(value, str) and looks_like_secret(value):
                rep.value(("registries", name, key),
                          f"{key} looks like a secret, not the name of an environment variable "
                          "(the value is not shown): put the secret in an environment variable and write its name here")


BUNDLE_FEED = "bundle:"


def _check_feed(feed: str, path: Path, registries: dict[str, Any], rep: Reporter, base_dir: FsPath) -> None:
    if feed.startswith(BUNDLE_FEED):
        where = feed[len(BUNDLE_FEED):]
        if not (base_dir / where).exists():
            rep.value(path, f"bundle {where!r} not found (looked for {base_dir / where}); paths are relative to the "
                            "YAML file")
        return
    if not is_url(feed) and feed not in registries:
        known = ", ".join(sorted(registries)) or "none defined"
        rep.value(path, f"unknown feed {feed!r}: not a registries entry (known: {known}), not an http:// or "
                        "https:// URL and not bundle:PATH")


def _with_hint(exc: InvalidInput) -> str:
    return exc.message + (f" (hint: {exc.hint})" if exc.hint else "")


def _check_filter(tag_filter: Any, path: Path, rep: Reporter) -> None:
    spec = as_dict(tag_filter)
    for which in ("include", "exclude"):
        patterns = as_list(spec.get(which))
        if valid_patterns(patterns):
            continue  # the usual case, and the same list across repositories is checked once
        for i, pattern in enumerate(patterns):
            if isinstance(pattern, str) and pattern:
                try:
                    compile_pattern(pattern)
                except InvalidInput as exc:
                    rep.value(path + (which, i), _with_hint(exc))
    if isinstance(spec.get("semver"), str) and spec["semver"].strip():
        try:
            compile_range(spec["semver"])
        except InvalidInput as exc:
            rep.value(path + ("semver",), _with_hint(exc))
    versions = "semver" in spec or ("latest" in spec and spec.get("sort", "semver") == "semver")
    for key in ("semver_suffix", "prereleases"):
        if key in spec and not versions:
            rep.key(path + (key,), f"{key} only applies with semver, or latest with sort: semver (it says which "
                                   "tags are versions)")
    if "sort" in spec and "latest" not in spec:
        rep.key(path + ("sort",), "sort only applies with latest (it ranks the tags latest keeps)")


def _check_platforms(platforms: Any, path: Path, rep: Reporter) -> None:
    seen: set[str] = set()
    for i, text in enumerate(as_list(platforms)):
        if not isinstance(text, str) or not text:
            continue  # the schema reported it
        try:
            parse_platform(text)
        except InvalidInput as exc:
            rep.value(path + (i,), _with_hint(exc))
            continue
        if text in seen:
            rep.value(path + (i,), f"platform {text!r} is listed twice")
        seen.add(text)


def _check_repository(repo_id: str, repo: dict[str, Any], defaults: dict[str, Any], registries: dict[str, Any],
                      repositories: dict[str, Any], rep: Reporter, base_dir: FsPath) -> None:
    here: Path = ("repositories", repo_id)
    feed = effective_feed(repo, defaults)
    if isinstance(repo.get("feed"), str):
        _check_feed(repo["feed"], here + ("feed",), registries, rep, base_dir)
    if isinstance(feed, str) and feed.startswith(BUNDLE_FEED) and repo.get("enable_v1") is True:
        rep.key(here + ("enable_v1",), "enable_v1 needs a registry feed with a v1 API; a bundle carries no v1 images")
    if feed is not None and "upstream_name" not in repo:
        rep.key(here + ("feed",) if "feed" in repo else here, "a feed needs upstream_name: the repository's name on the feed")
    if "upstream_name" in repo and feed is None:
        rep.key(here + ("upstream_name",), "upstream_name needs a feed (set feed here or in defaults)")
    name = repo.get("upstream_name")
    if isinstance(name, str) and NAME_RE.match(name):  # (the schema reported any other spelling)
        feed_url = feed if isinstance(feed, str) and is_url(feed) else as_dict(registries.get(feed)).get("url")
        message = upstream_name_message(name, feed_url if isinstance(feed_url, str) else None)
        if message:  # a registry host in front of a well-formed name
            rep.value(here + ("upstream_name",), message)
    if feed is None:
        for key in ("tags", "mirror", "allow_empty", "enable_v1", "platforms", "referrers"):
            if key in repo:
                rep.key(here + (key,), f"{key!r} only applies to a repository with a feed (it filters or mirrors the sync)")
    _check_filter(repo.get("tags"), here + ("tags",), rep)
    _check_platforms(repo.get("platforms"), here + ("platforms",), rep)
    for i, upload in enumerate(as_list(repo.get("uploads"))):
        file = as_dict(upload).get("file")
        if isinstance(file, str) and file and not (base_dir / file).exists():
            rep.value(here + ("uploads", i, "file"),
                      f"upload file {file!r} not found (looked for {base_dir / file}); paths are relative to the YAML file")
        if as_dict(upload).get("v1") is not True:
            if "mask_id" in as_dict(upload):
                rep.key(here + ("uploads", i, "mask_id"), "mask_id only applies to a v1 upload (v1: true)")
        elif "tag" in as_dict(upload):
            rep.key(here + ("uploads", i, "tag"),
                    "a v1 upload takes its v1 tags from the tarball's repositories file; remove tag")
    for i, copy in enumerate(as_list(repo.get("copy"))):
        _check_platforms(as_dict(copy).get("platforms"), here + ("copy", i, "platforms"), rep)
        if "platforms" in as_dict(copy) and not ({"tags", "indexes"} & as_dict(copy).keys()):
            rep.key(here + ("copy", i, "platforms"), "platforms only applies to copied tags and indexes "
                                                      "(a copied manifest is one platform already)")
        source = as_dict(copy).get("from")
        if not isinstance(source, str):
            continue
        if source == repo_id:
            rep.value(here + ("copy", i, "from"), "a repository cannot copy from itself")
        elif source not in repositories and _ID.fullmatch(source):
            rep.value(here + ("copy", i, "from"), _unknown_repo(source, repositories))
    _check_keys(as_dict(repo.get("verify")).get("cosign_keys"), here + ("verify", "cosign_keys"), rep, base_dir)
    for name, value in as_dict(repo.get("pins")).items():
        if not isinstance(value, str) or not value:
            continue
        try:
            target = parse_pin(value)
        except InvalidInput as exc:
            rep.value(here + ("pins", name), exc.message)
            continue
        if isinstance(target, tuple) and target[0] not in repositories and _ID.fullmatch(target[0]):
            rep.value(here + ("pins", name), _unknown_repo(target[0], repositories))


def _check_keys(keys: Any, path: Path, rep: Reporter, base_dir: FsPath) -> None:
    """Each ``verify.cosign_keys`` file exists and is a supported PEM public key."""
    for i, name in enumerate(as_list(keys)):
        if not isinstance(name, str) or not name:
            continue  # the schema reported it
        file = base_dir / FsPath(name).expanduser()
        try:
            data = file.read_bytes()
        except OSError as exc:
            rep.value(path + (i,), f"cannot read the key {name!r} ({exc.strerror or exc}; looked for {file}); "
                                   "paths are relative to the YAML file")
            continue
        try:
            parse_key(data, name)
        except InvalidInput as exc:
            rep.value(path + (i,), _with_hint(exc))


def _unknown_repo(name: str, repositories: dict[str, Any]) -> str:
    return f"unknown repository {name!r}: known repositories are {', '.join(sorted(repositories)) or 'none'}"
