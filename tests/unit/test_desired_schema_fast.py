"""The compiled fast schema check (``desired.schema.fast_valid``) lets a file skip
jsonschema only when jsonschema would find nothing: if it ever said "valid" where
jsonschema finds an error, that error would silently go unreported. Checked against every
test and example file and against deterministic mutations of a full example (every value
replaced by values of every JSON type)."""

from __future__ import annotations

import copy
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler.desired.schema import fast_valid, load_schema
from reconciler.desired.yamlpos import read_yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*(ROOT / "tests/unit/data/desired").glob("*.yaml"), *(ROOT / "examples").glob("*.yaml")])
REPLACEMENTS: list[Any] = [None, True, 0, -1, 7, 1.5, "", "x", "latest", "-bad", "sha256:" + "a" * 64,
                           "https://r.example", [], ["x"], [1], {}, {"x": 1}, {"include": ["x"]}]


def jsonschema_valid(data: Any) -> bool:
    return not any(Draft202012Validator(load_schema()).iter_errors(data))


def load(path: Path) -> Any:
    return read_yaml(path.read_text(), str(path)).data


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from paths(v, (*prefix, i))


def replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_fast_check_agrees_with_jsonschema_on_every_file(path: Path) -> None:
    data = load(path)
    assert fast_valid(data) == jsonschema_valid(data)


def test_fast_check_never_passes_what_jsonschema_rejects() -> None:
    base = load(ROOT / "examples" / "repos.yaml")
    rng = random.Random(8)
    cases = [(p, v) for p in paths(base) for v in REPLACEMENTS]
    # and unknown keys everywhere a mapping is
    cases += [((*p, "unknown_key"), "x") for p in paths(base) if isinstance(_at(base, p), dict)]
    rng.shuffle(cases)
    rejected = 0
    for path, value in cases:
        doc = replaced(base, path, value)
        want = jsonschema_valid(doc)
        assert fast_valid(doc) == want, (path, value)
        rejected += not want
    assert rejected > len(cases) // 2  # the mutations really exercise the rejecting side


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def test_the_generated_validator_is_of_the_current_schema() -> None:
    """``reconciler/desired/_schema_validator.py`` is fastjsonschema's code for the schema,
    generated ahead so no command pays for compiling it (50-100 ms). An edited schema needs
    it regenerated; until then the check is compiled at every start (correct, but slow)."""
    from reconciler.desired import _schema_validator as generated
    from reconciler.desired.schema import _fast_validator, schema_sha256

    assert generated.SCHEMA_SHA256 == schema_sha256(), \
        "repos.schema.json changed: run .venv/bin/python scripts/gen_schema_validator.py"
    assert _fast_validator() is generated.validate


def test_checking_a_valid_file_imports_nothing_of_fastjsonschema() -> None:
    # importing the package loads every draft's code generator (15-35 ms of each plan,
    # apply and validate); the generated check defines the exceptions it raises itself
    code = ("import sys\nfrom reconciler.desired.loader import load_desired\n"
            "load_desired(sys.argv[1])\nprint('fastjsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples" / "demo.yaml")], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
