"""repos.yaml's values without their positions: the fast way in for a valid file.

Recording the line and column of every key and value was most of what building a large
desired state cost after libyaml's parse, and a valid file never shows one: positions
appear only in diagnostics and in a plan error naming an entry (``DesiredState.where``,
which reads them on first use: ``yamlpos.DeferredPositions``). So ``read_plain`` builds
the values alone and gives up (None) at the first thing that would need a diagnostic or
that it does not handle: a YAML error, a forbidden tag, a duplicate or non-string key, a
merge of something other than a mapping, nesting deeper than ``MAX_DEPTH``, aliases
past ``MAX_ALIAS_NODES`` or recursive, an empty document, or PyYAML without libyaml. The
caller then reads the file with positions (``yamlpos.read_yaml``), whose values and
messages are the reference. For every file it accepts, ``read_plain`` returns the values
``read_yaml`` does (``tests/unit/test_desired_plain.py``): keys are their source text, an
unquoted date stays a string, YAML 1.1 booleans (``yes``/``on``) and numbers are what
PyYAML's safe constructor makes of them, and ``<<`` merges as ``read_yaml`` merges.
"""

from __future__ import annotations

from typing import Any

import yaml
import yaml.constructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.desired import yamlpos
from reconciler.desired.yamlpos import MAX_DEPTH

_Y = "tag:yaml.org,2002:"
_STR = f"{_Y}str"
_TIMESTAMP = f"{_Y}timestamp"
_SEQ = f"{_Y}seq"
_MAP = f"{_Y}map"
_MERGE = f"{_Y}merge"
#: the scalar tags whose values PyYAML's safe constructor makes (str and timestamp stay text)
_CONSTRUCTED = frozenset(f"{_Y}{t}" for t in ("int", "float", "bool", "null"))

_constructor = yaml.constructor.SafeConstructor()
#: (tag, text) -> value for the constructed scalars: ints, floats, booleans and nulls, all
#: immutable; a big file repeats the same few (``true``, ``6``) thousands of times
_made: dict[tuple[str, str], Any] = {}


class _NeedsPositions(Exception):
    """The document needs the reader with positions (a diagnostic, or a case left to it)."""


def read_plain(text: str) -> Any | None:
    """The document's values, or None: read it with ``yamlpos.read_yaml`` instead."""
    if not yamlpos.FAST:
        return None
    try:
        node = yaml.compose(text, Loader=yamlpos.CLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    if node is None:
        return None
    if "&" in text and not yamlpos.aliases_within_bounds(node):
        return None
    try:
        return _build(node, 0)
    except _NeedsPositions:
        return None


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag
    if tag == _STR or tag == _TIMESTAMP:
        return node.value  # plain text, as read_yaml keeps it
    if tag not in _CONSTRUCTED:
        raise _NeedsPositions  # a forbidden tag
    key = (tag, node.value)
    try:
        return _made[key]
    except KeyError:
        value = _constructor.yaml_constructors[tag](_constructor, node)
        if len(_made) < 10_000:
            _made[key] = value
        return value


def _build(node: Node, depth: int) -> Any:
    """``node`` at ``depth`` (the length of its path) as a plain value."""
    cls = node.__class__
    if cls is ScalarNode:
        return _scalar(node)  # type: ignore[arg-type]
    if depth >= MAX_DEPTH:
        raise _NeedsPositions  # refused at its position
    if cls is SequenceNode:
        if node.tag != _SEQ:
            raise _NeedsPositions
        inner = depth + 1
        return [c.value if c.__class__ is ScalarNode and c.tag == _STR else _build(c, inner) for c in node.value]
    if cls is MappingNode:
        if node.tag != _MAP:
            raise _NeedsPositions
        return _mapping(node, depth)  # type: ignore[arg-type]
    raise _NeedsPositions  # pragma: no cover - PyYAML has no other node kinds


def _mapping(node: MappingNode, depth: int) -> dict[str, Any]:
    """As ``yamlpos._Builder._mapping``: keys are their source text, a mapping's own keys
    win over merged ones, earlier merges over later ones."""
    out: dict[str, Any] = {}
    merges: list[Node] = []
    inner = depth + 1
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            merges.append(value_node)
            continue
        if key_node.__class__ is not ScalarNode:
            raise _NeedsPositions
        key = key_node.value
        if key in out:
            raise _NeedsPositions  # a duplicate key: reported
        if value_node.__class__ is ScalarNode and value_node.tag == _STR:
            out[key] = value_node.value
        else:
            out[key] = _build(value_node, inner)
    for merge in merges:
        for source in merge.value if merge.__class__ is SequenceNode else [merge]:
            if source.__class__ is not MappingNode:
                raise _NeedsPositions
            for key, value in _mapping(source, depth).items():
                out.setdefault(key, value)
    return out
