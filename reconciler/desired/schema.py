"""Validation against ``repos.schema.json``, every error mapped to its line and column.

``jsonschema``'s messages are written for JSON programmers ("'yes' is not of type
'boolean'"); here each kind of error is rewritten for someone editing YAML, and located
at the exact key (unknown keys, bad ids) or value (wrong types, bad patterns). Pattern
errors reuse the model's own validators so that the wording matches the rest of the
tool ("invalid tag ...").

Speed (issue 8): importing ``jsonschema`` costs 0.15-0.3 s and walking a 1,000-repository
document with it 0.5 s, on every plan. A valid file - the common case - is first checked
by a validator that ``fastjsonschema`` generated ahead from the same schema (a few ms;
fastjsonschema itself is imported only when the file is out of date with the schema);
only when that check fails is ``jsonschema`` imported and run for the
full, located diagnostics. The fast check only decides *whether* to look closer: any
disagreement in its favour of rejecting still ends in jsonschema's verdict, and the
tests check that it rejects every invalid golden file.
"""

from __future__ import annotations

import hashlib
import json
import pkgutil
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from reconciler.desired.diagnostics import Diagnostic, Path, format_path
from reconciler.desired.yamlpos import Positions
from reconciler.errors import ReconcilerError
from reconciler.model import validate_repository_name, validate_tag
from reconciler.model.reference import name_hint, upstream_name_problem

#: keys that hold credentials when written inline; credentials never belong in git
SECRET_KEYS = ("password", "passwd", "token", "secret", "username", "user", "auth", "identitytoken",
               "registrytoken", "api_key", "apikey", "credentials")
SECRET_HINT = "keep credentials out of the file: name environment variables in username_env/password_env, " \
              "or use auth_file"


@cache
def _schema_bytes() -> bytes:
    # through the package's loader (pkgutil), not importlib.resources: that imports
    # tempfile, shutil, zipfile and the compression modules, and every validate, plan and
    # apply reads this file (the hash check below)
    data = pkgutil.get_data("reconciler", "schemas/repos.schema.json")
    if data is None:  # a loader that cannot read package data; ours always can
        raise RuntimeError("the packaged schema reconciler/schemas/repos.schema.json cannot be read")
    return data


@cache
def load_schema() -> dict[str, Any]:
    """The packaged schema (identical to the repository's ``schemas/repos.schema.json``)."""
    schema: dict[str, Any] = json.loads(_schema_bytes().decode("utf-8"))
    return schema


@cache
def _pattern_kinds() -> dict[str, str]:
    s = load_schema()
    defs = s["$defs"]
    repo = defs["repository"]["properties"]
    return {
        defs["tag"]["pattern"]: "tag",
        defs["digest"]["pattern"]: "digest",
        defs["envName"]["pattern"]: "env",
        repo["publish"]["pattern"]: "name",
        repo["feed"]["pattern"]: "feed",
        repo["copy"]["items"]["properties"]["from"]["pattern"]: "id",
        defs["registry"]["properties"]["url"]["pattern"]: "url",
        defs["tagFilter"]["properties"]["semver_suffix"]["pattern"]: "suffix",
    }


#: how the fast validator is compiled (also by scripts/gen_schema_validator.py)
VALIDATOR_OPTIONS: dict[str, Any] = {"use_default": False, "use_formats": False}


@cache
def schema_sha256() -> str:
    """The hash of the packaged schema's text: names the schema a generated validator checks."""
    return hashlib.sha256(_schema_bytes()).hexdigest()


@cache
def _fast_validator() -> Callable[[Any], Any]:
    # the code fastjsonschema generates for the schema, written once by
    # scripts/gen_schema_validator.py: compiling it here cost 50-100 ms per start. Should
    # the file and the schema disagree (an edited schema, not regenerated), compile now:
    # slower, never wrong; tests/unit/test_desired_schema_fast.py fails in that case.
    from reconciler.desired import _schema_validator as generated

    if generated.SCHEMA_SHA256 == schema_sha256():
        validate: Callable[[Any], Any] = generated.validate
        return validate

    import fastjsonschema

    # every keyword the schema uses means the same in draft 7 (no $ref with siblings)
    return fastjsonschema.compile(load_schema(), **VALIDATOR_OPTIONS)


def fast_valid(data: Any) -> bool:
    """True when ``data`` certainly conforms to the schema (the compiled check passed).
    Its exceptions, the generated file's and fastjsonschema's, are ``ValueError``s; any
    other ``ValueError`` also means "look closer", never "valid"."""
    try:
        _fast_validator()(data)
    except ValueError:
        return False
    return True


def schema_diagnostics(data: Any, positions: Positions, file: str) -> list[Diagnostic]:
    """Every schema violation in ``data`` (not just the first)."""
    if fast_valid(data):
        return []
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema())
    out: list[Diagnostic] = []
    for error in validator.iter_errors(data):
        for where, path, message in _translate(error, positions):
            line, col = where
            out.append(Diagnostic(line, col, format_path(path), message, file))
    return out


Found = tuple[tuple[int, int], Path, str]


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


_TYPE_WORDS = {"string": "a string", "boolean": "true or false", "integer": "a whole number",
               "array": "a list", "object": "a mapping", "number": "a number"}


def _translate(error: Any, positions: Positions) -> Iterator[Found]:
    # `Any`: jsonschema types these attributes as "value or Unset"; a ValidationError from
    # iter_errors always has them set
    path: Path = tuple(error.absolute_path)
    kind = error.validator
    instance = error.instance
    at_value = positions.value(path)
    if kind == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                yield positions.key(path + (key,)), path + (key,), _unknown_key(key, allowed, path)
    elif kind == "required" and isinstance(instance, dict):
        for key in error.validator_value:
            if key not in instance:
                yield positions.key(path), path, f"missing required key {key!r}"
    elif kind == "type":
        expected = error.validator_value
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in ([expected] if isinstance(expected, str) else expected))
        message = f"expected {words}, got {_describe(instance)}"
        raw = positions.raw.get(path)
        if expected == "string" and raw is not None and not isinstance(instance, str):
            message += f": quote it, e.g. \"{raw}\""
        yield at_value, path, message
    elif kind == "const":
        yield at_value, path, f"must be {json.dumps(error.validator_value)}, got {_describe(instance)}"
    elif kind == "pattern":
        if "propertyNames" in error.absolute_schema_path:
            key_path = path + (instance,)
            yield positions.key(key_path), key_path, _bad_pattern(error.validator_value, instance, key_path)
        else:
            yield at_value, path, _bad_pattern(error.validator_value, instance, path)
    elif kind in ("anyOf", "oneOf"):
        yield from _any_of(error, positions)
    elif kind == "minLength":
        yield at_value, path, "must not be empty"
    elif kind == "minItems":
        n = error.validator_value
        yield at_value, path, f"must list at least {n} item{'' if n == 1 else 's'} (leave the key out instead)"
    elif kind == "maxLength":
        yield at_value, path, f"is longer than {error.validator_value} characters"
    elif kind == "minimum":
        hint = " (latest: N keeps the N newest tags; leave it out to keep every tag)" if path[-1:] == ("latest",) else ""
        yield at_value, path, f"must be at least {error.validator_value}, got {instance}{hint}"
    elif kind == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        yield at_value, path, f"expected one of {choices}, got {_describe(instance)}"
    elif kind == "maximum":
        yield at_value, path, f"must be at most {error.validator_value}, got {instance}"
    else:
        yield at_value, path, error.message


def _unknown_key(key: str, allowed: list[str], path: Path) -> str:
    if key.lower() in SECRET_KEYS or any(s in key.lower() for s in ("password", "token", "secret")):
        return f"inline credential {key!r} is not allowed: {SECRET_HINT}"
    import difflib  # only to explain an error

    close = difflib.get_close_matches(key, allowed, n=1)
    if not close and path and path[-1] == "tags" and {"include", "exclude"} <= set(allowed):
        # a tag name under the filter: most likely a pin written the way the first design sketch wrote it
        return (f"unknown key {key!r} in the sync tag filter (allowed: {', '.join(allowed)}): "
                f"tag pins go under 'pins:', e.g. pins: {{{key}: REPO:TAG}}")
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r}: {suggestion}allowed keys: {', '.join(allowed)}"


def _bad_pattern(pattern: str, value: str, path: Path) -> str:
    kind = _pattern_kinds().get(pattern)
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    try:
        if kind == "tag":
            validate_tag(value)
        elif kind == "digest":
            return f"invalid digest {value!r}: expected sha256: followed by 64 lowercase hex characters"
        elif kind == "name" and field == "upstream_name":
            return upstream_name_message(value)
        elif kind == "name":
            validate_repository_name(value, what={"publish": "publish name"}.get(field, field.replace("_", " ")))
        elif kind == "suffix":
            return (f"invalid semver_suffix {value!r}: the part of a tag after its version and a '-' (letters, "
                    "digits, '.', '_', '-'), or a glob of it, e.g. alpine or alpine*")
        elif kind == "env":
            return (f"{field} must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), "
                    f"not the secret itself (the value is not shown); {SECRET_HINT}")
        elif kind in ("url", "feed"):
            if "@" in value.split("://", 1)[-1].split("/", 1)[0]:
                return f"credentials in the URL are not allowed (the value is not shown); {SECRET_HINT}"
            if kind == "feed":
                return f"invalid feed {value!r}: use the name of a registries entry or an https:// URL"
            return f"invalid URL {value!r}: expected http:// or https:// followed by a host"
        elif kind == "id" or path[:1] in (("repositories",), ("registries",)):
            return (f"invalid id {value!r}: use letters, digits, '.', '_' and '-' "
                    "(no '/' or ':'), starting with a letter or digit")
    except ReconcilerError as exc:
        return exc.message + (f" ({exc.hint})" if exc.hint else "")
    return f"{value!r} does not match {pattern}"


def upstream_name_message(value: str, feed_url: str | None = None) -> str:
    """The diagnostic for an upstream name the registry would not know (empty: it is fine)."""
    problem = upstream_name_problem(value, feed_url)
    if problem is None:
        return ""
    hint = name_hint(problem)
    return problem.message + (f" ({hint})" if hint else "")


def _any_of(error: Any, positions: Positions) -> Iterator[Found]:
    path: Path = tuple(error.absolute_path)
    context = list(error.context or ())
    if context and all(e.validator == "required" for e in context):
        names = sorted({k for e in context for k in e.validator_value})
        yield positions.key(path), path, f"needs at least one of: {', '.join(names)}"
        return
    # a branch whose type matched but failed deeper explains the problem best
    deeper = [e for e in context if tuple(e.absolute_path) != path]
    if deeper:
        for e in deeper:
            yield from _translate(e, positions)
        return
    what = str(error.schema.get("description", "a valid value")).replace("`", "'").rstrip(".")
    yield positions.value(path), path, f"expected {what}, got {_describe(error.instance)}"
