"""Safe YAML reading that remembers where every value came from.

``read_yaml`` turns the text into plain Python values (dict, list, str, int, float, bool,
None) plus a ``Positions`` table mapping each document path to the line and column of its
key and of its value, so that every later check can point at the exact spot. On top of
PyYAML's ``SafeLoader`` it:

- reports duplicate mapping keys (PyYAML silently keeps the last one; a second ``feed:``
  that wins unnoticed is exactly the kind of mistake a review misses),
- refuses every explicit tag outside the plain JSON-like set (``!!python/...``, ``!!binary``,
  ``!!set``, custom ``!tags``),
- bounds aliases: the nodes that aliases expand to are counted before anything walks the
  document, and a file whose aliases would expand past ``MAX_ALIAS_NODES`` is refused
  (the "billion laughs" alias bomb), as is a recursive alias,
- bounds nesting: a value nested deeper than ``MAX_DEPTH`` mappings and lists, as written
  or once aliases are expanded, is refused at its position (``[[[[...`` thousands deep
  would otherwise exhaust Python's recursion limit in the composer and surface as a
  traceback instead of a diagnostic).

Mapping keys are always the key's source text (``1.10:`` stays ``"1.10"``), and an
unquoted date stays the string it was written as.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import yaml
import yaml.constructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.desired.diagnostics import Diagnostic, Path, format_path

#: how many nodes aliases may add to the document in total
MAX_ALIAS_NODES = 100_000
#: how deeply mappings and lists may nest (repos.yaml needs about 6)
MAX_DEPTH = 64

_Y = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_Y}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_MERGE_TAG = f"{_Y}merge"
_STR = f"{_Y}str"
_TIMESTAMP = f"{_Y}timestamp"


@dataclass
class Positions:
    """1-based (line, column) of each path's key and value."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    #: source text of scalars, for hints such as "quote it: '1.10'"
    raw: dict[Path, str] = field(default_factory=dict)

    def value(self, path: Path) -> tuple[int, int]:
        """Where the value at ``path`` starts, or its nearest recorded ancestor."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.values:
                return self.values[path[:n]]
        return (1, 1)

    def key(self, path: Path) -> tuple[int, int]:
        """Where the key naming ``path`` starts (falls back to the value)."""
        return self.keys.get(path) or self.value(path)


class DeferredPositions(Positions):
    """The positions of a document read without them (``yamlplain.read_plain``), worked
    out from its text when ``value`` or ``key`` is first asked: a valid file's are needed
    only for a plan error naming an entry, and recording them cost more than the parse.
    The text is the one the values were read from, so a file changed on disk since does
    not move them."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__()
        self._text: str | None = text
        self._file = file
        self._lock = threading.Lock()

    def _fill(self) -> None:
        with self._lock:
            if self._text is not None:
                got = read_yaml(self._text, self._file).positions
                self.values.update(got.values)
                self.keys.update(got.keys)
                self.raw.update(got.raw)
                self._text = None

    def value(self, path: Path) -> tuple[int, int]:
        self._fill()
        return super().value(path)

    def key(self, path: Path) -> tuple[int, int]:
        self._fill()
        return super().key(path)


class PositionLoader(yaml.SafeLoader):
    """A ``SafeLoader`` that records every alias use so that expansions can be counted."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_uses: list[tuple[yaml.Mark, Node]] = []
        self.depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            if target is not None:
                self.alias_uses.append((event.start_mark, target))
        elif self.check_event(yaml.CollectionStartEvent) and self.depth >= MAX_DEPTH:
            raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self.depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self.depth -= 1


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        self.mark = mark


class _Recursive(Exception):
    def __init__(self, node: Node) -> None:
        self.node = node


def _expanded_size(node: Node, memo: dict[int, int], active: set[int], depth: int = 0) -> int:
    """Nodes in ``node``'s subtree with every alias expanded (memoised: linear time).

    Refuses (``_TooDeep``) a walk deeper than ``MAX_DEPTH``, so neither a deep document nor
    a recursive alias exhausts the stack; the bound itself is applied by the builder, on
    the values as built (aliases included)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise _Recursive(node)
    if depth > MAX_DEPTH:
        raise _TooDeep(node.start_mark)
    size = 1
    if isinstance(node, ScalarNode):
        children: list[Node] = []
    elif isinstance(node, SequenceNode):
        children = node.value
    else:
        children = [n for pair in node.value for n in pair]
    active.add(key)
    for child in children:
        size += _expanded_size(child, memo, active, depth + 1)
    active.discard(key)
    memo[key] = size
    return size


def _mark(mark: yaml.Mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


class _Builder:
    """Walks the composed node graph into plain values, recording positions and problems."""

    def __init__(self, loader: yaml.constructor.SafeConstructor) -> None:
        self.loader = loader
        self.positions = Positions()
        self.problems: list[tuple[tuple[int, int], Path, str]] = []

    def problem(self, where: tuple[int, int], path: Path, message: str) -> None:
        self.problems.append((where, path, message))

    def build(self, node: Node, path: Path) -> Any:
        self.positions.values.setdefault(path, _mark(node.start_mark))
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if len(path) >= MAX_DEPTH:
            raise _TooDeep(node.start_mark)  # a collection this deep (aliases included): refused
        if isinstance(node, SequenceNode):
            if node.tag != f"{_Y}seq":
                return self._bad_tag(node, path)
            return [self.build(child, path + (i,)) for i, child in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if node.tag != f"{_Y}map":
                return self._bad_tag(node, path)
            return self._mapping(node, path)
        return None  # pragma: no cover - PyYAML has no other node kinds

    def _bad_tag(self, node: Node, path: Path) -> None:
        shown = "!!" + node.tag[len(_Y):] if node.tag.startswith(_Y) else node.tag
        self.problem(_mark(node.start_mark), path,
                     f"YAML tag {shown!r} is not allowed: use plain strings, numbers, booleans, "
                     "lists and mappings")
        return None

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        if node.tag not in _SCALAR_TAGS:
            return self._bad_tag(node, path)
        self.positions.raw[path] = node.value
        if node.tag == _STR or node.tag == _TIMESTAMP:
            return node.value  # plain text (an unquoted date is meant as text here: tags, names)
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(_mark(key_node.start_mark), path, "mapping keys must be plain strings")
                continue
            key = key_node.value
            child = path + (key,)
            if key in out:
                first_line = self.positions.keys[child][0]
                self.problem(_mark(key_node.start_mark), child,
                             f"duplicate key {key!r} (first defined at line {first_line}); "
                             "YAML would silently keep only the last one")
                continue
            self.positions.keys[child] = _mark(key_node.start_mark)
            out[key] = self.build(value_node, child)
        # ``<<: *base`` (or a list of them): keys the mapping sets itself win; earlier merges win
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.problem(_mark(source.start_mark), path, "'<<' must merge a mapping or a list of mappings")
                    continue
                for key, value in self._mapping(source, path).items():
                    out.setdefault(key, value)
        return out


@dataclass
class YamlDocument:
    data: Any
    positions: Positions
    diagnostics: list[Diagnostic]


def read_yaml(text: str, file: str) -> YamlDocument:
    """Parse ``text``; problems come back as diagnostics, never as exceptions.

    libyaml (``CSafeLoader``) composes the node graph, marks included, about ten times
    faster than PyYAML's pure-Python parser, which matters for a desired state of
    thousands of repositories. Any YAML error, recursive alias or alias bomb goes to
    the pure-Python reader instead, whose messages and positions are the reference (it
    sees each alias's own position); so is everything when libyaml is missing."""
    if FAST:
        doc = _read_fast(text, file)
        if doc is not None:
            return doc
    return _read_pure(text, file)


#: libyaml is there (PyYAML's C extension): ``CLoader`` composes
FAST: bool = getattr(yaml, "__with_libyaml__", False)
_FAST = FAST

if FAST:
    class CLoader(yaml.CSafeLoader):
        """libyaml's safe loader with implicit-tag resolution memoised: a big desired
        state repeats the same keys and values thousands of times, and PyYAML resolves
        each scalar with regular expressions in Python."""

        #: plain scalar text -> its tag (a plain scalar's tag depends on its text alone)
        _plain: dict[str, str] = {}

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            if kind is not ScalarNode or self.yaml_path_resolvers:
                return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
            if not implicit[0]:
                return self.DEFAULT_SCALAR_TAG  # quoted (or tagged '!'): a string, as PyYAML says
            tag = self._plain.get(value)
            if tag is None:
                resolvers = self.yaml_implicit_resolvers
                if value and value[0] not in resolvers and None not in resolvers:
                    # no implicit type starts with this character (an id, a name, a URL):
                    # a string, and not worth remembering (such values are mostly unique)
                    return self.DEFAULT_SCALAR_TAG
                tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
                if len(self._plain) < 100_000:
                    self._plain[value] = tag
            return tag


def aliases_within_bounds(node: Node) -> bool:
    """False when what aliases expand to is recursive, nests too deep or exceeds
    ``MAX_ALIAS_NODES`` (the pure reader then reports it, with its position)."""
    memo: dict[int, int] = {}
    try:
        _expanded_size(node, memo, set())
    except (_Recursive, _TooDeep):
        return False
    return _alias_expansion(node, memo) <= MAX_ALIAS_NODES


def _read_fast(text: str, file: str) -> YamlDocument | None:
    """The document, or None when the pure reader must report a problem."""
    try:
        node = yaml.compose(text, Loader=CLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    if node is None:
        return YamlDocument(None, Positions(values={(): (1, 1)}), [])
    # anchors, hence aliases, are possible: bound what they expand to (and recursion)
    # before building. Without an ``&`` there is no anchor, so no alias: this walk of
    # every node was a sixth of loading a 1,000-repository file, for nothing.
    if "&" in text and not aliases_within_bounds(node):
        return None
    builder = _Builder(yaml.constructor.SafeConstructor())
    try:
        data = builder.build(node, ())  # bounds the nesting as it goes
    except _TooDeep:
        return None  # the pure reader reports it, with its position
    diags = [Diagnostic(line, col, format_path(path), msg, file) for (line, col), path, msg in builder.problems]
    return YamlDocument(data, builder.positions, diags)


def _alias_expansion(root: Node, memo: dict[int, int]) -> int:
    """Nodes that aliases add: an alias is the same node object reached again after its
    anchor (libyaml gives no alias events), and it adds that node's expanded size."""
    seen = {id(root)}
    added = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, SequenceNode):
            children: list[Node] = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            continue
        for child in children:
            if id(child) in seen:
                added += memo.get(id(child), 1)
                if added > MAX_ALIAS_NODES:
                    return added
            else:
                seen.add(id(child))
                stack.append(child)
    return added


def _read_pure(text: str, file: str) -> YamlDocument:
    loader = PositionLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = _mark(mark) if mark else (1, 1)
            what = " ".join(filter(None, [exc.context, exc.problem]))
            return YamlDocument(None, Positions(), [Diagnostic(*where, "(document)", f"YAML syntax error: {what}", file)])
        except yaml.YAMLError as exc:
            return YamlDocument(None, Positions(), [Diagnostic(1, 1, "(document)", f"YAML error: {exc}", file)])
        except _TooDeep as exc:
            return _too_deep(exc, file)
        if node is None:
            return YamlDocument(None, Positions(values={(): (1, 1)}), [])
        builder = _Builder(loader)
        try:
            refused = _check_aliases(loader, node, file)
            if refused:
                return YamlDocument(None, Positions(), refused)
            data = builder.build(node, ())
        except _TooDeep as exc:  # nested through aliases: each level within bounds, not the sum
            return _too_deep(exc, file)
    finally:
        loader.dispose()
    diags = [Diagnostic(line, col, format_path(path), msg, file) for (line, col), path, msg in builder.problems]
    return YamlDocument(data, builder.positions, diags)


def _too_deep(exc: _TooDeep, file: str) -> YamlDocument:
    return YamlDocument(None, Positions(), [Diagnostic(
        *_mark(exc.mark), "(document)",
        f"mappings and lists nest more than {MAX_DEPTH} levels deep; refused: "
        "repos.yaml needs only a few levels, so this file is not a desired state", file)])


def _check_aliases(loader: PositionLoader, root: Node, file: str) -> list[Diagnostic]:
    memo: dict[int, int] = {}
    try:
        _expanded_size(root, memo, set())
    except _Recursive as exc:
        line, col = _mark(exc.node.start_mark)
        return [Diagnostic(line, col, "(document)", "recursive alias: an anchor refers to itself; refused", file)]
    added = 0
    for mark, target in loader.alias_uses:
        added += memo.get(id(target), 1)
        if added > MAX_ALIAS_NODES:
            line, col = _mark(mark)
            return [Diagnostic(line, col, "(document)",
                               f"aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?); "
                               "refused: write the values out or use fewer nested aliases", file)]
    return []
