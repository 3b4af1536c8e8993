"""The plain reader (``desired/yamlplain.py``) against the reader with positions.

A valid repos.yaml is read without the positions of its values; anything else goes to the
reader with positions. A user would notice a difference as a different desired state
(a boolean read as text, a merge resolved another way, a duplicate key slipping through)
or as a different error message, so: for every document the plain reader accepts it
gives exactly ``read_yaml``'s values with no diagnostics; it refuses every document
``read_yaml`` has something to say about; and a file loaded either way gives the same
state, the same positions and the same messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.desired import check_text, load_desired, loader, yamlplain, yamlpos
from reconciler.desired.yamlpos import MAX_DEPTH, DeferredPositions, read_yaml
from reconciler.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "desired"

#: documents the plain reader takes, each with what a user means by it
ACCEPTED = {
    "yaml11-booleans": "a: yes\nb: No\nc: on\nd: OFF\ne: true\nf: y\n",
    "numbers": "a: 0x1F\nb: 0o17\nc: 017\nd: 1_000\ne: 1:30\nf: 1.5e3\ng: .inf\nh: -.Inf\ni: 6\nj: +12\n",
    "nulls": "a: ~\nb: null\nc:\nd: Null\n",
    "dates-stay-text": "a: 2024-01-01\nb: 2024-01-01T10:00:00Z\n",
    "keys-keep-source-text": "1.10: a\ntrue: b\nnull: c\n2024-01-01: d\n0x10: e\n~: f\n'q': g\n",
    "explicit-plain-tags": "a: !!str 12\nb: !!int '7'\nc: !!bool 'true'\nd: !!float 1\ne: !!null ''\n",
    "tagged-key-is-text": "!!str 12: a\n!!int 13: b\n",
    "quoted": "a: '1.10'\nb: \"yes\"\nc: 'it''s'\nd: \"tab\\there\"\n",
    "block-scalars": "a: |\n  one\n  two\nb: >\n  folded\n  text\n",
    "flow": "a: {b: [1, 2, {c: d}], e: []}\nf: {}\n",
    "anchors": "a: &x {p: 1, q: [2, 3]}\nb: *x\nc: &s text\nd: *s\n",
    "merge": "base: &b {p: 1, q: 2}\nm:\n  <<: *b\n  q: 3\n",
    "merge-list": "b1: &b1 {p: 1}\nb2: &b2 {p: 2, r: 3}\nm: {<<: [*b1, *b2], s: 4}\n",
    "merge-inline-mapping": "m:\n  <<: {p: 1}\n  q: 2\n",
    "merge-tagged-source": "m:\n  <<: !!omap {p: 1}\n",
    "quoted-merge-key-is-a-key": "m: {'<<': 1}\n",
    "ampersand-in-text": "url: https://x.example/?a=1&b=2\n",
    "deep-but-within-bounds": "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n",
    "unicode": "a: grüße\nb: 日本\n",
    "document-marker": "---\na: 1\n...\n",
    "scalar-document": "just text\n",
    "list-document": "- a\n- b\n",
}

#: documents the reader with positions has something to say about (or that it reads)
REFUSED = {
    "duplicate-key": "a: 1\na: 2\n",
    "duplicate-in-merge-source": "b: &b {p: 1, p: 2}\nm: {<<: *b}\n",
    "python-tag": "a: !!python/object:os.system x\n",
    "binary": "a: !!binary aGVsbG8=\n",
    "set": "a: !!set {x, y}\n",
    "custom-tag": "a: !secret x\n",
    "omap": "a: !!omap [{x: 1}]\n",
    "tagged-sequence": "a: !!seq {x: 1}\n",
    "complex-key": "? [a, b]\n: 1\n",
    "mapping-key": "? {a: 1}\n: 1\n",
    "merge-of-scalar": "m: {<<: 1}\n",
    "merge-list-of-scalar": "m: {<<: [1]}\n",
    "too-deep": "a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n",
    "recursive-alias": "a: &a [*a]\n",
    "alias-bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg", strict=True)),
    "syntax-error": "a: [1, 2\n",
    "tab-indent": "a:\n\tb: 1\n",
    "empty": "",
    "comment-only": "# nothing\n",
    "two-documents": "a: 1\n---\nb: 2\n",
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_plain_reader_gives_the_values_read_yaml_gives(name: str) -> None:
    text = ACCEPTED[name]
    doc = read_yaml(text, "f.yaml")
    assert doc.diagnostics == []
    plain = yamlplain.read_plain(text)
    assert plain is not None, "the plain reader should have taken this document"
    assert plain == doc.data
    assert _types(plain) == _types(doc.data)  # True is not 1, "1" is not 1
    pure = yamlpos._read_pure(text, "f.yaml").data  # PyYAML's parser and resolver, no memo
    assert (pure, _types(pure)) == (plain, _types(plain))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_plain_reader_leaves_problems_to_the_reader_with_positions(name: str) -> None:
    assert yamlplain.read_plain(REFUSED[name]) is None


def test_yaml11_booleans_and_merges_mean_what_they_meant() -> None:
    """Spelled out, not only "equal to read_yaml": what a user of today's files relies on."""
    got = yamlplain.read_plain(ACCEPTED["yaml11-booleans"] + ACCEPTED["merge"].replace("base", "z"))
    assert got == {"a": True, "b": False, "c": True, "d": False, "e": True, "f": "y",
                   "z": {"p": 1, "q": 2}, "m": {"p": 1, "q": 3}}
    assert yamlplain.read_plain(ACCEPTED["keys-keep-source-text"]) == {
        "1.10": "a", "true": "b", "null": "c", "2024-01-01": "d", "0x10": "e", "~": "f", "q": "g"}


def _corpus() -> list[Path]:
    return sorted([*DATA.glob("*.yaml"), *(ROOT / "examples").glob("*.yaml")])


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_files_read_either_way_agree(path: Path) -> None:
    text = path.read_text()
    doc = read_yaml(text, "f.yaml")
    plain = yamlplain.read_plain(text)
    if doc.diagnostics:
        assert plain is None
    else:
        assert plain == doc.data


def _slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "read_plain", lambda text: None)


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_loading_gives_the_same_state_and_messages_as_the_reader_with_positions(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def load() -> tuple[Any, str]:
        try:
            state = load_desired(path)
        except ConfigError as exc:
            return None, f"{exc.message}\n{exc.hint}"
        return state, ""

    fast_state, fast_error = load()
    fast_check = check_text(path.read_bytes(), str(path), path.parent)
    with monkeypatch.context() as m:
        _slow(m)
        slow_state, slow_error = load()
        slow_check = check_text(path.read_bytes(), str(path), path.parent)
    assert fast_error == slow_error
    assert fast_check == slow_check
    assert fast_state == slow_state
    if fast_state is not None:
        # positions are read on first use, from the same text: every entry is where it was
        assert isinstance(fast_state.positions, DeferredPositions)
        for repo_id in slow_state.repositories:
            for part in ((), ("publish",), ("feed",), ("copy", 0, "from"), ("pins",), ("push",)):
                where = ("repositories", repo_id, *part)
                assert fast_state.where(*where) == slow_state.where(*where)


def test_a_valid_file_is_read_without_positions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench's shape (many mirrored repositories) and the shipped examples take the
    fast path: were a check to ask for a position on a valid file, they would quietly
    pay for the slow one again."""
    asked: list[str] = []
    real = read_yaml

    def spy(text: str, file: str) -> Any:
        asked.append(file)
        return real(text, file)

    monkeypatch.setattr(loader, "read_yaml", spy)
    big = tmp_path / "repos.yaml"
    big.write_text("version: 1\nregistries:\n  up:\n    url: https://r.example\nrepositories:\n" + "".join(
        f"  r{i}:\n    feed: up\n    upstream_name: scale/r{i}\n    tags: {{include: [t0, t1, 'v*']}}\n"
        f"    pins: {{stable: r0:t0, old: 'sha256:{i:064x}'}}\n    publish: scale/r{i}\n" for i in range(50)))
    for path in [big, ROOT / "examples" / "repos.yaml"]:
        state = load_desired(path)
        assert asked == [], f"{path} was read with positions"
        assert isinstance(state.positions, DeferredPositions)
    assert load_desired(big).where("repositories", "r7", "publish") == f"{big}:{7 * 6 + 11}:14"


def test_a_problem_found_after_the_plain_read_is_reported_from_the_positions(tmp_path: Path) -> None:
    path = tmp_path / "repos.yaml"
    path.write_text("version: 1\nrepositories:\n  a: {publish: x/a}\n  b: {publish: x/a}\n")
    with pytest.raises(ConfigError) as info:
        load_desired(path)
    assert info.value.message.endswith(
        "4:16: repositories.b.publish: publish name 'x/a' is already used by repository 'a' (line 3); "
        "publish names must be unique")


# -- any document: generated values, written out in YAML's block and flow styles ----------

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, width=32),
    st.sampled_from(["yes", "no", "on", "off", "1.10", "2024-01-01", "0x1F", "~", "<<", "&x", "*y", "!t", "a: b",
                     "", " lead", "trail ", "multi\nline", "t0", "v1.*", "sha256:" + "a" * 64]),
    st.text(max_size=8),
)
_KEYS = st.one_of(st.text(min_size=1, max_size=6), st.sampled_from(["1.10", "true", "null", "<<", "~", "2024-01-01"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=20)


@settings(derandomize=True, max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(value=st.dictionaries(_KEYS, _VALUES, max_size=5), flow=st.sampled_from([False, True, None]))
def test_any_document_reads_the_same_either_way(value: dict[str, Any], flow: bool | None) -> None:
    text = yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True, sort_keys=False)
    doc = read_yaml(text, "f.yaml")
    plain = yamlplain.read_plain(text)
    if plain is None:
        # read_yaml reports something, or libyaml refused what PyYAML's pure parser reads
        assert doc.diagnostics or doc.data is None or yamlpos._read_fast(text, "f.yaml") is None
    else:
        assert doc.diagnostics == []
        assert plain == doc.data
        assert _types(plain) == _types(doc.data)
        # and what PyYAML's own resolver makes of each scalar (libyaml's loader memoises it)
        pure = yamlpos._read_pure(text, "f.yaml")
        assert (pure.data, _types(pure.data)) == (plain, _types(plain))


def _types(value: Any) -> Any:
    """The value's shape with every scalar's type: ``==`` alone takes True for 1."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__
