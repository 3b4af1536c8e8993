"""Hostile repos.yaml files: alias bombs, deep nesting, huge files, duplicate keys, wrong
types, forbidden tags, binary data. Each one is a ``ConfigError`` naming FILE:LINE:COL
with what is wrong and a hint, never a traceback, and ``plan``/``apply`` through the CLI
exit 1 with that message and leave the store exactly as it was (same generation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.desired import load_desired
from reconciler.desired.diagnostics import Diagnostic
from reconciler.desired.loader import MAX_DESIRED_BYTES
from reconciler.desired.yamlpos import MAX_DEPTH
from reconciler.errors import ConfigError
from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.narrow import narrow_all

DATA = Path(__file__).parent / "data" / "desired"
DEEP = f"more than {MAX_DEPTH} levels deep"


def _huge(path: Path) -> None:
    """A 50 MB file (sparse, so it costs no disk): refused by its size, never parsed."""
    with open(path, "wb") as f:
        f.write(b"version: 1\nrepositories: {}\n")
        f.truncate(50 * 1000 * 1000)


def _write(text: str) -> Callable[[Path], object]:
    return lambda path: path.write_text(text)


def _laughs(path: Path) -> None:
    path.write_bytes((DATA / "alias_bomb.yaml").read_bytes())


CASES = {
    # name: (writer, [(line, col, message fragment)])
    "alias-bomb": (_laughs, [(6, 47, "aliases expand to more than 100000 nodes")]),
    "deep-flow": (_write("version: 1\nrepositories: " + "[" * 100_000 + "]" * 100_000 + "\n"),
                  [(2, 15 + MAX_DEPTH - 1, DEEP)]),
    "deep-block": (_write("version: 1\nrepositories:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 400))
                          + " " * 400 + "x: 1\n"), [(2 + MAX_DEPTH, MAX_DEPTH + 1, DEEP)]),
    "deep-mapping-flow": (_write("version: 1\nrepositories: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"),
                          [(2, 15 + 4 * (MAX_DEPTH - 1), DEEP)]),
    # each level within bounds as written, too deep once the alias is expanded: the bound is
    # on the values built (both readers; the pure one used to accept it)
    "deep-through-alias": (_write("version: 1\nbase: &b " + "[" * 40 + "]" * 40 + "\nrepositories:\n  x:\n"
                                  "    k: " + "[" * 30 + "*b" + "]" * 30 + "\n"), [(2, 41, DEEP)]),
    "huge": (_huge, [(1, 1, f"the file is 50000000 bytes, more than the {MAX_DESIRED_BYTES} byte limit")]),
    "duplicate-key": (_write("version: 1\nrepositories:\n  web: {}\n  web: {prune: true}\n"),
                      [(4, 3, "duplicate key 'web' (first defined at line 3)")]),
    "wrong-types": (_write("version: '1'\nrepositories: [web]\n"),
                    [(1, 10, "version: must be 1"), (2, 15, "expected a mapping, got a list")]),
    "python-tag": (_write("version: 1\nrepositories: !!python/object/apply:os.system ['touch /tmp/x']\n"),
                   [(2, 15, "YAML tag '!!python/object/apply:os.system' is not allowed")]),
    "binary": (lambda p: p.write_bytes(b"version: 1\nrepositories: {}\n\xff\xfe\x00junk"),
               [(3, 1, "not UTF-8 text")]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_file_is_a_positioned_config_error(tmp_path: Path, name: str) -> None:
    writer, expected = CASES[name]
    path = tmp_path / "repos.yaml"
    writer(path)
    with pytest.raises(ConfigError) as info:
        load_desired(path)
    got = [(d.line, d.column, d.render()) for d in narrow_all(Diagnostic, info.value.diagnostics)]
    assert [(line, col) for line, col, _ in got] == [(line, col) for line, col, _ in expected], got
    for (_, _, rendered), (line, col, fragment) in zip(got, expected, strict=True):
        assert rendered.startswith(f"{path}:{line}:{col}: ") and fragment in rendered
    assert info.value.hint and "reconciler validate -f" in info.value.hint


def test_nesting_at_the_limit_is_accepted_by_the_reader(tmp_path: Path) -> None:
    """The bound refuses only what is deeper than MAX_DEPTH (the schema then judges it)."""
    depth = MAX_DEPTH - 2  # the root mapping and 'repositories' value are two levels
    path = tmp_path / "repos.yaml"
    path.write_text("version: 1\nrepositories: {x: " + "[" * depth + "]" * depth + "}\n")
    with pytest.raises(ConfigError) as info:
        load_desired(path)
    assert all(DEEP not in d.render() for d in narrow_all(Diagnostic, info.value.diagnostics))


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store holding one repository, so 'changes nothing' has something to keep."""
    path = tmp_path / "store"
    store = SQLiteStore(path)
    try:
        store.repository_create("keep")
    finally:
        store.close()
    return path


def _generation(path: Path) -> tuple[int, list[str]]:
    store = SQLiteStore(path)
    try:
        return store.generation(), [r.id for r in store.repository_list()]
    finally:
        store.close()


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize("name", ["alias-bomb", "deep-flow", "huge", "duplicate-key"])
def test_plan_and_apply_refuse_and_change_nothing(tmp_path: Path, store_path: Path, run_cli: RunCli, name: str,
                                                   command: str) -> None:
    writer, expected = CASES[name]
    path = tmp_path / "repos.yaml"
    writer(path)
    before = _generation(store_path)
    proc = run_cli(command, "-f", str(path), store=store_path)
    assert proc.returncode == 1, proc.stderr
    line, col, fragment = expected[0]
    assert f"error: {path}: 1 problem:\n{path}:{line}:{col}: " in proc.stderr and fragment in proc.stderr
    assert "hint: fix them, then check again with: reconciler validate" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _generation(store_path) == before
