"""Semantic checks, part two: contradictions between entries.

- a tag declared twice with different targets in one repository (pins, upload tags,
  copied tags, and the statically known tags of a repository copied with ``tags: all``),
- a tag or digest both declared and removed in one repository,
- a publish name used by two repositories,
- copy cycles: repository A copies (or pins a tag) from B and B, directly or through
  others, from A; apply could never order them. The cycle is reported with its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.desired.diagnostics import Path
from reconciler.desired.reporter import Reporter
from reconciler.desired.semantic import as_dict, as_list, parse_pin
from reconciler.errors import InvalidInput


@dataclass(frozen=True)
class Declared:
    """One declaration of a tag: ``target`` compares equal for the same thing."""

    tag: str
    target: tuple[str, ...]
    shown: str
    path: Path
    on_key: bool = False


def _own_tags(repo: dict[str, Any], here: Path) -> list[Declared]:
    """Tags a repository declares itself (not through ``tags: all``)."""
    out: list[Declared] = []
    for name, value in as_dict(repo.get("pins")).items():
        if not isinstance(value, str):
            continue
        try:
            target = parse_pin(value)
        except InvalidInput:
            continue
        key = ("tag",) + target if isinstance(target, tuple) else ("digest", str(target))
        out.append(Declared(name, key, f"pin to {value}", here + ("pins", name), on_key=True))
    for i, upload in enumerate(as_list(repo.get("uploads"))):
        tag, file = as_dict(upload).get("tag"), as_dict(upload).get("file")
        if isinstance(tag, str):
            out.append(Declared(tag, ("upload", str(file), str(i)), f"upload of {file}", here + ("uploads", i, "tag")))
    for i, copy in enumerate(as_list(repo.get("copy"))):
        source = as_dict(copy).get("from")
        for j, tag in enumerate(as_list(as_dict(copy).get("tags"))):
            if isinstance(tag, str) and isinstance(source, str):
                out.append(Declared(tag, ("tag", source, tag), f"tag {tag} of {source}", here + ("copy", i, "tags", j)))
    return out


def declared_tags(repo_id: str, repositories: dict[str, Any]) -> list[Declared]:
    """Own tags plus, for ``copy: {tags: all}``, the source's own statically known tags."""
    here: Path = ("repositories", repo_id)
    repo = as_dict(repositories.get(repo_id))
    out = _own_tags(repo, here)
    for i, copy in enumerate(as_list(repo.get("copy"))):
        source = as_dict(copy).get("from")
        if as_dict(copy).get("tags") == "all" and isinstance(source, str) and source != repo_id:
            for d in _own_tags(as_dict(repositories.get(source)), ("repositories", source)):
                out.append(Declared(d.tag, ("tag", source, d.tag), f"tag {d.tag} of {source} (copied with tags: all)",
                                    here + ("copy", i, "tags")))
    return out


def check_conflicts(data: dict[str, Any], rep: Reporter) -> None:
    repositories = as_dict(data.get("repositories"))
    publish_first: dict[str, str] = {}
    for repo_id, repo in repositories.items():
        if not isinstance(repo, dict):
            continue
        declared = declared_tags(repo_id, repositories)
        _check_tag_targets(declared, rep)
        _check_removed(repo_id, repo, declared, rep)
        publish = repo.get("publish")
        if isinstance(publish, str):
            if publish in publish_first:
                first = publish_first[publish]
                rep.value(("repositories", repo_id, "publish"),
                          f"publish name {publish!r} is already used by repository {first!r} "
                          f"(line {rep.line_of(('repositories', first, 'publish'))}); publish names must be unique")
            else:
                publish_first[publish] = repo_id
    _check_cycles(repositories, rep)


def _report(rep: Reporter, d: Declared, message: str) -> None:
    (rep.key if d.on_key else rep.value)(d.path, message)


def _position(rep: Reporter, d: Declared) -> tuple[int, int]:
    """Where ``d`` is reported: its key or its value."""
    return rep.positions.key(d.path) if d.on_key else rep.positions.value(d.path)


def _check_tag_targets(declared: list[Declared], rep: Reporter) -> None:
    targets: dict[str, set[tuple[str, ...]]] = {}
    for d in declared:
        targets.setdefault(d.tag, set()).add(d.target)
    if all(len(t) == 1 for t in targets.values()):
        return  # no tag with two targets: nothing to report, so no need for the file order (positions)
    first: dict[str, Declared] = {}
    for d in sorted(declared, key=lambda d: _position(rep, d)):
        seen = first.setdefault(d.tag, d)
        if seen is not d and seen.target != d.target:
            _report(rep, d, f"tag {d.tag!r} is declared twice with different targets: "
                            f"{seen.shown} (line {_position(rep, seen)[0]}) and {d.shown}")


def _check_removed(repo_id: str, repo: dict[str, Any], declared: list[Declared], rep: Reporter) -> None:
    here: Path = ("repositories", repo_id)
    by_tag = {d.tag: d for d in reversed(declared)}
    remove = as_dict(repo.get("remove"))
    for i, tag in enumerate(as_list(remove.get("tags"))):
        if isinstance(tag, str) and tag in by_tag:
            d = by_tag[tag]
            rep.value(here + ("remove", "tags", i),
                      f"tag {tag!r} is both removed and declared ({d.shown}, line {_position(rep, d)[0]}); "
                      "keep one of them")
    wanted: dict[str, Path] = {}
    for d in declared:
        if d.target[0] == "digest":
            wanted.setdefault(d.target[1], d.path)
    for i, copy in enumerate(as_list(repo.get("copy"))):
        for kind in ("manifests", "indexes"):
            for j, digest in enumerate(as_list(as_dict(copy).get(kind))):
                if isinstance(digest, str):
                    wanted.setdefault(digest, here + ("copy", i, kind, j))
    for kind in ("manifests", "indexes"):
        for i, digest in enumerate(as_list(remove.get(kind))):
            if isinstance(digest, str) and digest in wanted:
                rep.value(here + ("remove", kind, i),
                          f"{digest} is both removed and declared (line {rep.line_of(wanted[digest])}); keep one of them")


def _edges(repositories: dict[str, Any]) -> dict[str, list[tuple[str, Path]]]:
    """repository -> [(repository it needs applied first, where that is said)]."""
    out: dict[str, list[tuple[str, Path]]] = {}
    for repo_id, repo in repositories.items():
        needs: list[tuple[str, Path]] = []
        for i, copy in enumerate(as_list(as_dict(repo).get("copy"))):
            source = as_dict(copy).get("from")
            if isinstance(source, str) and source in repositories and source != repo_id:
                needs.append((source, ("repositories", repo_id, "copy", i, "from")))
        for name, value in as_dict(as_dict(repo).get("pins")).items():
            try:
                target = parse_pin(value) if isinstance(value, str) else None
            except InvalidInput:
                continue
            if isinstance(target, tuple) and target[0] in repositories and target[0] != repo_id:
                needs.append((target[0], ("repositories", repo_id, "pins", name)))
        out[repo_id] = needs
    return out


def _check_cycles(repositories: dict[str, Any], rep: Reporter) -> None:
    edges = _edges(repositories)
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done
    stack: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt, _ in edges.get(node, []):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    _report_cycle(cycle, edges, rep)
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def _report_cycle(cycle: list[str], edges: dict[str, list[tuple[str, Path]]], rep: Reporter) -> None:
    start = cycle.index(min(cycle))  # the same cycle reads the same whichever node DFS met first
    ordered = cycle[start:] + cycle[:start]
    first, second = ordered[0], ordered[1 % len(ordered)]
    where = next(path for target, path in edges[first] if target == second)
    shown = " -> ".join(ordered + [ordered[0]])
    rep.value(where, f"copy cycle: {shown} (each copies or pins a tag from the next), so no repository "
                     "in it can be applied first; remove one of these copies")
