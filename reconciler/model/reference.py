"""Image references (``host:port/name:tag@digest``), repository names and tag names.

Repository and publish names follow Docker's rules: lowercase path components
``[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`` joined by ``/``, 255 characters at most.
Tags follow the OCI grammar ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.errors import NameInvalid, ReferenceInvalid, TagInvalid
from reconciler.model.digest import Digest

NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{NAME_COMPONENT}(?:/{NAME_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 255
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


def validate_repository_name(name: str, *, what: str = "repository name") -> str:
    """Return ``name`` if it obeys Docker's name rules, else raise ``NameInvalid``."""
    if not isinstance(name, str) or not name:
        raise NameInvalid(f"{what} must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid(f"{what} {name!r} is longer than {MAX_NAME_LENGTH} characters")
    if not NAME_RE.fullmatch(name):
        raise NameInvalid(
            f"invalid {what} {name!r}",
            hint="use lowercase letters and digits, separated by '.', '_', '__' or '-', in '/'-joined components, e.g. 'pulpdemo/synctest'",
        )
    return name


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it obeys ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``."""
    if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
        raise TagInvalid(
            f"invalid tag {tag!r}",
            hint="a tag starts with a letter, digit or '_' and has at most 128 characters from [A-Za-z0-9._-]",
        )
    return tag


def is_valid_tag(tag: str) -> bool:
    return isinstance(tag, str) and bool(TAG_RE.fullmatch(tag))


@dataclass(frozen=True)
class Reference:
    """``[host[:port]/]name[:tag][@digest]``."""

    name: str
    host: str | None = None
    tag: str | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        out = f"{self.host}/{self.name}" if self.host else self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str) -> Reference:
    """Parse an image reference. The first component is a host when it contains a ``.``
    or ``:`` or is ``localhost`` (Docker's rule)."""
    if not isinstance(text, str) or not text:
        raise ReferenceInvalid("empty image reference")
    rest, digest = text, None
    if "@" in rest:
        rest, _, digest_text = rest.partition("@")
        try:
            digest = Digest.parse(digest_text)
        except Exception as exc:
            raise ReferenceInvalid(f"invalid reference {text!r}: {exc}") from exc
    host = None
    first, slash, remainder = rest.partition("/")
    if slash and (("." in first or ":" in first) or first == "localhost"):
        if not _HOST_RE.fullmatch(first):
            raise ReferenceInvalid(f"invalid reference {text!r}: bad registry host {first!r}")
        host, rest = first, remainder
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        try:
            validate_tag(tag)
        except TagInvalid as exc:
            raise ReferenceInvalid(f"invalid reference {text!r}: {exc}") from exc
    try:
        validate_repository_name(rest)
    except NameInvalid as exc:
        raise ReferenceInvalid(f"invalid reference {text!r}: {exc}") from exc
    return Reference(rest, host, tag, digest)


#: Docker Hub's API hosts; the original matched ``registry[-,\w]*.docker.io``
_DOCKER_HUB_HOST_RE = re.compile(r"^(?:registry[-\w]*\.docker\.io|docker\.io|index\.docker\.io)$", re.IGNORECASE)


def is_docker_hub(url: str) -> bool:
    """True when a feed URL (``https://registry-1.docker.io``, ``docker.io`` ...) is Docker Hub."""
    rest = url.split("://", 1)[-1]
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host = host.split(":", 1)[0] if not host.startswith("[") else host
    return bool(_DOCKER_HUB_HOST_RE.fullmatch(host))


def normalize_upstream_name(url: str, name: str) -> str:
    """The repository name to ask ``url`` for: on Docker Hub a one-component name such
    as ``busybox`` means ``library/busybox`` (official images), as Pulp 2 did."""
    if "/" not in name and is_docker_hub(url):
        return f"library/{name}"
    return name


#: hosts of public registries that people paste in front of a repository name
_REGISTRY_HOST_RE = re.compile(
    r"^(?:(?:index\.|registry-1\.|registry\.hub\.)?docker\.io|ghcr\.io|quay\.io|(?:[a-z]+\.)?gcr\.io|"
    r"[a-z0-9-]+-docker\.pkg\.dev|public\.ecr\.aws|.+\.amazonaws\.com|mcr\.microsoft\.com|.+\.azurecr\.io|"
    r"registry\.k8s\.io|registry\.gitlab\.com|nvcr\.io|(?:registry\.access\.)?redhat\.io|"
    r"registry\.access\.redhat\.com|(?:[a-z]+\.)?icr\.io|docker\.elastic\.co)$",
    re.IGNORECASE)


@dataclass(frozen=True)
class NameProblem:
    """Why a string is not a repository name to ask a registry for, and the name it most
    likely meant (None when no valid name is in sight)."""

    message: str
    suggestion: str | None
    #: what to do with the parts that were cut off (the host, the tag, the digest)
    advice: tuple[str, ...] = ()


def _host(url: str | None) -> str | None:
    if not url:
        return None
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].rsplit("@", 1)[-1].lower()


def upstream_name_problem(name: str, feed_url: str | None = None) -> NameProblem | None:
    """None when ``name`` is a repository name to ask ``feed_url`` for; otherwise what is
    wrong with it. Caught here, not by the registry (which answers a bare 404 or, on some
    registries, an empty tag list): upper case, a ``:tag`` or ``@digest`` suffix, and a
    registry host in front (``docker.io/library/busybox``: the host belongs in the feed)."""
    problems: list[str] = []
    advice: list[str] = []
    rest = name.strip()
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        problems.append(f"it ends in a digest (@{digest})")
        advice.append("a sync takes tags, not digests: pin a digest with pins")
    first, slash, remainder = rest.partition("/")
    feed_host = _host(feed_url)
    if slash and (":" in first or first.lower() == "localhost" or _REGISTRY_HOST_RE.match(first)
                  or (feed_host is not None and first.lower() in (feed_host, feed_host.split(":", 1)[0]))):
        rest = remainder
        problems.append(f"it starts with the registry host {first!r}")
        advice.append(f"the registry host goes in the feed: https://{first}")
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        problems.append(f"it ends in a tag (:{tag})")
        advice.append(f"tags are chosen with the tag filter: include {tag!r}")
    if rest != rest.lower():
        rest = rest.lower()
        problems.append("it has upper-case letters (repository names are lower case)")
    if not problems:
        try:
            validate_repository_name(name, what="upstream name")
        except NameInvalid as exc:
            return NameProblem(exc.message, None, (exc.hint,) if exc.hint else ())
        return None
    try:
        suggestion: str | None = validate_repository_name(rest)
    except NameInvalid:
        suggestion = None
    return NameProblem(f"invalid upstream name {name!r}: {'; '.join(problems)}", suggestion, tuple(advice))


def check_upstream_name(name: str, feed_url: str | None = None) -> str:
    """``name`` when it is a repository name to ask ``feed_url`` for; otherwise
    ``NameInvalid`` with a "did you mean" hint (``upstream_name_problem``)."""
    problem = upstream_name_problem(name, feed_url)
    if problem is None:
        return name
    raise NameInvalid(problem.message, hint=name_hint(problem) or None)


def name_hint(problem: NameProblem) -> str:
    """``did you mean 'library/busybox'? the registry host goes in the feed: ...``."""
    meant = f"did you mean {problem.suggestion!r}?" if problem.suggestion else ""
    return " ".join(x for x in (meant, "; ".join(problem.advice)) if x)
