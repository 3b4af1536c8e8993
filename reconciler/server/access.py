"""Per-repository read access (``reconciler serve --access FILE``), and the one check
every route of both servers (registry and Crane mode, v2 and v1) goes through.

The access file says which htpasswd users may pull which protected repositories::

    # access.yaml
    repositories:
      prod/*: [alice, deploy-bot]      # '*': any characters within one path component
      team-a/**: [alice]               # '**': any number of whole components

Rules only grant; a user may pull a protected name when ANY rule whose pattern matches
the name lists the user (the union of all matching rules; order does not matter, so
there is no "first match wins" to get wrong, and no deny rule). Patterns use the
characters of repository names plus ``*``: ``*`` matches any run of characters except
``/`` (so ``prod/*`` matches ``prod/app``, not ``prod`` or ``prod/app/x``); ``**`` must be
a whole component and matches one or more components at the end (``team-a/**``:
``team-a/x``, ``team-a/x/y``, not ``team-a``), zero or more at the start or in the middle
(``**/base``: ``base``, ``x/base``; ``a/**/b``: ``a/b``, ``a/x/b``). Public repositories
ignore the file. The file is read once at startup; every mistake (bad YAML, a pattern
that can never match, a user the htpasswd file does not have) is an error naming
``FILE:LINE``, so a typo cannot silently lock someone out or let someone in.

``decide()`` is the check. A user who may not pull a protected name gets ``HIDDEN``,
which the servers answer exactly as they answer a name that does not exist: a 403
would confirm to that user that the name exists (GitHub, Docker Hub and Artifactory's
"hide existence" answer the same way).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import yaml

from reconciler.errors import InvalidInput
from reconciler.model import validate_repository_name

MAX_FILE_BYTES = 1024 * 1024
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_PATTERN_CHARS = re.compile(r"^[a-z0-9._*/-]+$")
_HINT = "see docs/server.md, 'Per-repository access'"


class Decision(enum.Enum):
    ALLOW = "allow"
    #: protected and no credentials: the server asks for them (or refuses without a user list)
    ANONYMOUS = "anonymous"
    #: protected, valid credentials, no rule grants this user the name: answered as unknown
    HIDDEN = "hidden"


@dataclass(frozen=True)
class Rule:
    pattern: str
    users: frozenset[str]
    line: int
    regex: re.Pattern[str]

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name) is not None


@dataclass(frozen=True)
class AccessRules:
    """The parsed access file."""

    path: Path
    rules: tuple[Rule, ...]

    def allows(self, user: str, name: str) -> bool:
        return any(user in rule.users and rule.matches(name) for rule in self.rules)


def decide(name: str, protected: bool, user: str | None, access: AccessRules | None) -> Decision:
    """May ``user`` (None: anonymous) pull ``name``? Without an access file, any valid
    user may pull every protected name."""
    if not protected:
        return Decision.ALLOW
    if user is None:
        return Decision.ANONYMOUS
    if access is None or access.allows(user, name):
        return Decision.ALLOW
    return Decision.HIDDEN


def may_read(name: str, protected: bool, user: str | None, access: AccessRules | None) -> bool:
    return decide(name, protected, user, access) is Decision.ALLOW


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression for a pattern; ``ValueError`` saying what is wrong."""
    if not _PATTERN_CHARS.fullmatch(pattern):
        bad = sorted({c for c in pattern if not re.match(r"[a-z0-9._*/-]", c)})
        raise ValueError(f"pattern {pattern!r} has {', '.join(repr(c) for c in bad) or 'no characters'}: "
                         "only lower-case letters, digits, '.', '_', '-', '/' and '*' can match a repository name")
    comps = pattern.split("/")
    if "" in comps:
        raise ValueError(f"pattern {pattern!r} has an empty path component (a leading, trailing or double '/')")
    regex = ""
    for i, comp in enumerate(comps):
        first, last = i == 0, i == len(comps) - 1
        if comp == "**":
            if not first and comps[i - 1] == "**":
                raise ValueError(f"pattern {pattern!r} has '**/**': write '**' once")
            regex += ".+" if first and last else "/.+" if last else "(?:.+/)?" if first else "/(?:.+/)?"
            continue
        if "**" in comp:
            raise ValueError(f"pattern {pattern!r}: '**' must be a whole path component; "
                             "use '*' within a component")
        if not first and comps[i - 1] != "**":
            regex += "/"
        regex += "[^/]*".join(re.escape(part) for part in comp.split("*"))
    # a literal part that no repository name can have (e.g. 'prod/-app', 'a..b') is a typo
    try:
        validate_repository_name("/".join("x" if c == "**" else c.replace("*", "x") for c in comps))
    except InvalidInput:
        raise ValueError(f"pattern {pattern!r} can never match a repository name "
                         "(components are lower-case letters and digits joined by '.', '_', '__' or '-')") from None
    return re.compile(regex)


def load_access(path: str | Path, known_users: Collection[str], *, users_file: str | Path = "the htpasswd file"
                ) -> AccessRules:
    """Read and check an access file; ``InvalidInput`` with ``FILE:LINE`` for any mistake.
    ``known_users``: the htpasswd file's users (a user not among them is an error)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read the access file {path}: {exc.strerror}", hint=_HINT) from exc
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(f"{path}: over {MAX_FILE_BYTES} bytes; an access file is a short list of patterns",
                           hint=_HINT)

    def error(line: int, what: str, hint: str = _HINT) -> InvalidInput:
        return InvalidInput(f"{path}:{line}: {what}", hint=hint)

    try:
        root = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise error(1, "not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(line, f"not valid YAML: {problem}") from exc
    if not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1 if root is not None else 1
        raise error(line, "expected a mapping with the key 'repositories' (pattern: [user, ...])")
    repositories = None
    for key, value in root.value:
        if not (isinstance(key, yaml.ScalarNode) and key.value == "repositories"):
            raise error(key.start_mark.line + 1, f"unknown key {_text(key)!r}: the only key is 'repositories'")
        if repositories is not None:
            raise error(key.start_mark.line + 1, "'repositories' appears twice")
        repositories = value
    if repositories is None:
        raise error(1, "no 'repositories' key: it maps patterns to lists of users")
    if isinstance(repositories, yaml.ScalarNode) and repositories.tag == _NULL:
        return AccessRules(path, ())  # 'repositories:' with nothing under it: no protected name for anyone
    if not isinstance(repositories, yaml.MappingNode):
        raise error(repositories.start_mark.line + 1, "'repositories' must map patterns to lists of users")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for key, value in repositories.value:
        line = key.start_mark.line + 1
        if not (isinstance(key, yaml.ScalarNode) and key.tag == _STR):
            raise error(line, f"a pattern must be a string, not {_text(key)!r}")
        pattern = key.value
        if pattern in seen:
            raise error(line, f"pattern {pattern!r} appears twice (first on line {seen[pattern]}); "
                              "list all its users once")
        seen[pattern] = line
        try:
            regex = compile_pattern(pattern)
        except ValueError as exc:
            raise error(line, str(exc)) from None
        if not isinstance(value, yaml.SequenceNode):
            raise error(value.start_mark.line + 1, f"{pattern}: expected a list of users, e.g. [alice, bob]")
        users: set[str] = set()
        for item in value.value:
            item_line = item.start_mark.line + 1
            # any scalar is a name (a user may be called 1001 or yes), but not null or empty
            if not (isinstance(item, yaml.ScalarNode) and item.tag != _NULL and item.value):
                raise error(item_line, f"{pattern}: a user must be a non-empty name, not {_text(item)!r}")
            if item.value not in known_users:
                raise error(item_line, f"{pattern}: user {item.value!r} is not in {users_file}",
                            hint=f"fix the spelling, or add the user with `htpasswd -B {users_file} {item.value}`")
            users.add(item.value)
        rules.append(Rule(pattern, frozenset(users), line, regex))
    return AccessRules(path, tuple(rules))


def _text(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
