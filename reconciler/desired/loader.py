"""Loads ``repos.yaml``: read safely, validate against the schema, check semantics, freeze.

Every problem is collected before anything is reported: YAML problems (duplicate keys,
forbidden tags), schema violations, then semantic checks (which skip values the schema
already rejected). A valid file goes through all of it without the positions of its
values (``yamlplain``; they are worked out on first use): the first thing a check would
report sends the file down the path with positions, which reports it. If there is any, ``ConfigError`` carries them all, sorted by position
and rendered as ``FILE:LINE:COL: PATH: message``. Otherwise defaults are merged once into
the frozen ``DesiredState``, whose ``digest`` is the sha256 of the file's bytes (a saved
plan records it; apply refuses a plan made from a different file).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from reconciler.desired.build import build_state
from reconciler.desired.conflicts import check_conflicts
from reconciler.desired.diagnostics import Diagnostic, sort_unique
from reconciler.desired.diagnostics import Path as DocPath
from reconciler.desired.model import DesiredState
from reconciler.desired.reporter import Reporter
from reconciler.desired.schema import fast_valid, schema_diagnostics
from reconciler.desired.semantic import check_references
from reconciler.desired.yamlplain import read_plain
from reconciler.desired.yamlpos import DeferredPositions, Positions, read_yaml
from reconciler.errors import ConfigError, InvalidInput
from reconciler.model.gcpause import paused_gc

log = logging.getLogger(__name__)

#: a desired-state file larger than this is refused before it is parsed: 10,000
#: repositories (as the benchmark writes them) take 1.4 MiB, and parsing costs about
#: 85 MiB of memory per MiB of YAML, so a file at the cap needs well under 1 GiB
MAX_DESIRED_BYTES = 8 * 1024 * 1024


def check_text(raw: bytes, file: str, base_dir: Path) -> list[Diagnostic]:
    """Every problem in the document ``raw`` (named ``file``; uploads relative to ``base_dir``)."""
    return _check(raw, file, base_dir)[0]


def _too_big(size: int, file: str) -> Diagnostic:
    return Diagnostic(1, 1, "(document)", f"the file is {size} bytes, more than the {MAX_DESIRED_BYTES} byte "
                      "limit for a desired state; refused without parsing it: check that -f names repos.yaml", file)


def _read_capped(file: Path) -> bytes:
    """The file's bytes, reading at most one byte past the cap (a pipe or a growing
    file has no trustworthy size), so a huge file is never held in memory."""
    with open(file, "rb") as f:
        return f.read(MAX_DESIRED_BYTES + 1)


def _check(raw: bytes, file: str, base_dir: Path) -> tuple[list[Diagnostic], Any, Positions | None]:
    if len(raw) > MAX_DESIRED_BYTES:
        return [_too_big(len(raw), file)], None, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        return [Diagnostic(line, 1, "(document)", f"not UTF-8 text: {exc.reason} at byte {exc.start}", file)], None, None
    plain = read_plain(text)
    if plain is not None and _valid_plain(plain, file, base_dir):
        return [], plain, DeferredPositions(text, file)
    doc = read_yaml(text, file)
    diagnostics = list(doc.diagnostics)
    if doc.data is None and diagnostics:
        return sort_unique(diagnostics), None, None  # unreadable: nothing further to check
    # a value the YAML layer already refused (a forbidden tag) reads as null: say it once
    refused = {d.path for d in diagnostics}
    diagnostics += [d for d in schema_diagnostics(doc.data, doc.positions, file) if d.path not in refused]
    if isinstance(doc.data, dict):
        rep = Reporter(file, doc.positions)
        check_references(doc.data, rep, base_dir)
        check_conflicts(doc.data, rep)
        diagnostics += rep.diagnostics
    return sort_unique(diagnostics), doc.data, doc.positions


class _PositionsNeeded(Exception):
    """A check wants a position: the document has a problem to report."""


class _Unrecorded(Positions):
    """The positions of a document read without them: asking for one means a check found
    a problem, which the caller then reports from the document read with positions."""

    def value(self, path: DocPath) -> tuple[int, int]:
        raise _PositionsNeeded

    def key(self, path: DocPath) -> tuple[int, int]:
        raise _PositionsNeeded


def _valid_plain(data: Any, file: str, base_dir: Path) -> bool:
    """True when ``data`` (read without positions) passes the schema and the semantic
    checks. Every check locates what it reports, so the first position asked for (or a
    diagnostic) means False: the caller checks the document again with positions, and
    its messages are exactly those of a file that was never read the fast way."""
    if not isinstance(data, dict) or not fast_valid(data):
        return False
    rep = Reporter(file, _Unrecorded())
    try:
        check_references(data, rep, base_dir)
        check_conflicts(data, rep)
    except _PositionsNeeded:
        return False
    return not rep.diagnostics


def load_desired(path: str | Path) -> DesiredState:
    """Load and validate ``path``; raises ``ConfigError`` listing every problem."""
    file = Path(path)
    try:
        size = file.stat().st_size
        raw = _read_capped(file) if size <= MAX_DESIRED_BYTES else b""
    except FileNotFoundError as exc:
        raise InvalidInput(f"{file}: no such file", hint="pass the desired-state file with -f, e.g. -f repos.yaml") from exc
    except OSError as exc:
        raise InvalidInput(f"{file}: cannot read: {exc.strerror}") from exc
    data: Any = None
    positions: Positions | None = None
    # a large file is hundreds of thousands of objects (nodes, values, positions), all kept
    with paused_gc():
        if size > MAX_DESIRED_BYTES:
            diagnostics = [_too_big(size, str(path))]
        else:
            diagnostics, data, positions = _check(raw, str(path), file.resolve().parent)
        if diagnostics:
            count = f"{len(diagnostics)} problem{'s' if len(diagnostics) != 1 else ''}"
            lines = "\n".join(d.render() for d in diagnostics)
            raise ConfigError(f"{path}: {count}:\n{lines}", diagnostics,
                              hint=f"fix them, then check again with: reconciler validate -f {path}")
        state = build_state(data, file.resolve(), "sha256:" + hashlib.sha256(raw).hexdigest(),
                            positions=positions, file=str(path))
    log.debug("loaded %s: %d repositories", path, len(state.repositories))
    return state
