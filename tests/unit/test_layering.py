"""The layering rule (docs/architecture.md, "Layers"), enforced by reading imports:
errors <- model <- store roles <- store protocol <- ops <- plan <- apply <- watch <- cli;
adapters (store backends, registry client) import only the protocols and the model; the
server imports only the store's read view (``store.roles.read``) and the model; ops
import no store backend and no HTTP client (neither ours nor an HTTP, database or S3
library: ``ADAPTER_LIBRARIES``); the content interface (``ops.transfer.interface``)
knows only the model, and the file formats may use it but not the walk; wiring happens
in ``reconciler.api`` and the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"

BASE = {"errors", "model"}
#: layer -> what it may import (besides itself); the longest matching prefix applies
ALLOWED: dict[str, set[str] | None] = {
    "errors": set(),
    "model": {"errors"},
    "store.roles": BASE,                          # the store's role protocols (read view, content, ...)
    "store.protocol": BASE | {"store.roles"},     # Store: the union of the roles
    "store": BASE | {"store.protocol", "store.roles"},  # backends: store.sqlite, store.postgres, ...
    "registry": BASE,
    "desired": BASE,
    "ops": BASE | {"store.protocol", "store.roles", "registry.protocol"},
    # the content interface: protocols over the model, nothing else
    "ops.transfer.interface": BASE,
    # the one walk knows only the interface: no store, registry or file (those are adapters)
    "ops.transfer.walk": BASE | {"ops.transfer.interface", "ops.parallel", "ops.stop"},
    # file formats: read and write files (an export reads the store's read view), and are
    # the content interface's file sources and sinks (they know no operation, no walk)
    "ops.formats": BASE | {"store.roles.read", "ops.transfer.interface"},
    "plan": BASE | {"store.protocol", "store.roles", "registry.protocol", "ops", "desired"},
    "apply": BASE | {"store.protocol", "store.roles", "registry.protocol", "ops", "desired", "plan"},
    # a server only reads: the read view, never the writing roles or the whole Store
    "server": BASE | {"store.roles.read", "logfmt"},
    # the reconcile loop runs plan and apply as a library; wired through api
    "watch": BASE | {"store.protocol", "store.roles", "registry.protocol", "ops", "desired", "plan", "apply", "api",
                     "server.probes"},
    "logfmt": set(),
    # bundles: a writer over the store protocol, a reader behind the upstream interface
    "bundle": BASE | {"store.protocol", "store.roles", "registry.protocol", "ops"},
    "api": None,                                  # wiring: anything
    "api_serve": None,                            # wiring of the server commands (split from api)
    "cli": None,
    "__main__": None,
    "__init__": set(),
}
#: sub-layers below their own package: they may not import the rest of it (a file format
#: knows no operation; a store role knows no backend)
SEALED = {"ops.formats", "store.roles", "ops.transfer.interface", "ops.transfer.walk"}
#: libraries that are an adapter's job (HTTP clients, database drivers, S3): the layers
#: that must reach them only through the registry and store protocols may not import them
ADAPTER_LIBRARIES = {"requests", "urllib3", "httpx", "http.client", "sqlite3", "psycopg", "psycopg_pool",
                     "boto3", "botocore"}
NO_ADAPTER_LIBRARIES = ("model", "desired", "ops", "plan", "server")


def layer_of(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in ALLOWED:
            return key
    return parts[0]


def imports_of(source: str) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m[len("reconciler."):] for m in out if m.startswith("reconciler.")}


def violations(module: str, source: str) -> list[str]:
    layer = layer_of(module)
    allowed = ALLOWED.get(layer, set())
    if allowed is None:
        return []
    bad = []
    for imp in sorted(imports_of(source)):
        target = layer_of(imp)
        if target == layer or target in allowed or imp in allowed:
            continue
        if any(imp == a or imp.startswith(a + ".") for a in allowed):
            continue
        if (target.startswith(layer + ".") or layer.startswith(target + ".")) and layer not in SEALED:
            # store.sqlite may import store.protocol (listed) but not another backend
            if layer.startswith("store") and target.startswith("store") and target != "store.protocol":
                if layer.split(".")[:2] == target.split(".")[:2]:
                    continue
            elif layer.split(".")[0] == target.split(".")[0]:
                continue
        bad.append(f"{module} imports reconciler.{imp} (layer {layer!r} may use {sorted(allowed)})")
    return bad


def library_violations(module: str, source: str) -> list[str]:
    """The adapter libraries ``module`` imports though its layer may not."""
    if layer_of(module).split(".")[0] not in NO_ADAPTER_LIBRARIES:
        return []
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return [f"{module} imports {name} (an HTTP client, database driver or S3 library: an adapter's job)"
            for name in sorted(names)
            if any(name == lib or name.startswith(lib + ".") for lib in ADAPTER_LIBRARIES)]


def package_modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"] or ["__init__"]
        out.append((".".join(parts), path))
    return out


def test_package_obeys_layering() -> None:
    problems = []
    for module, path in package_modules():
        source = path.read_text()
        problems += violations(module, source) + library_violations(module, source)
    assert problems == []


@pytest.mark.parametrize("module,source", [
    ("model.manifest", "from reconciler.store.sqlite import SQLiteStore\n"),
    ("model.digest", "import reconciler.store.protocol\n"),
    ("store.sqlite.store", "from reconciler.ops import sync\n"),
    ("registry.client", "from reconciler.store.sqlite import SQLiteStore\n"),
    ("ops.sync", "from reconciler.registry.client import RegistryClient\n"),
    ("server.app", "from reconciler.store.sqlite import SQLiteStore\n"),
    ("server.blobs", "from reconciler.store.blobs.s3 import S3Blobs\n"),
    ("ops.sync", "from reconciler.store.blobs import open_blobs\n"),
    ("ops.fetch", "from reconciler.store.sqlite.store import SQLiteStore\n"),
    ("ops.fetch", "from reconciler.registry.session import make_session\n"),
    ("server.app", "from reconciler.store.protocol import Store\n"),
    ("server.content", "from reconciler.store.roles.content import ContentStore\n"),
    ("server.catalog.views", "from reconciler.store.roles.versions import VersionStore\n"),
    ("store.roles.read", "from reconciler.store.protocol import Store\n"),
    ("ops.formats.archive", "from reconciler.ops.result import OpResult\n"),
    ("ops.formats.crane", "from reconciler.store.protocol import Store\n"),
    # a file format is a source or a sink of the content interface, never the walk
    ("ops.formats.filesource", "from reconciler.ops.transfer.walk import transfer\n"),
    ("ops.formats.filesource", "from reconciler.ops.transfer.adapters import StoreSink\n"),
    # the content interface knows no store, no registry, no operation
    ("ops.transfer.interface", "from reconciler.store.protocol import Store\n"),
    ("ops.transfer.interface", "from reconciler.registry.protocol import UpstreamSource\n"),
    ("ops.transfer.interface", "from reconciler.ops.fetch import fetch_content\n"),
    # the walk and its adapters: no store backend, no HTTP client
    ("ops.transfer.walk", "from reconciler.store.sqlite.store import SQLiteStore\n"),
    # the walk knows only the interface: the store, a registry, a file format and the
    # operations reach it through adapters
    ("ops.transfer.walk", "from reconciler.store.protocol import Store\n"),
    ("ops.transfer.walk", "from reconciler.registry.protocol import UpstreamSource\n"),
    ("ops.transfer.walk", "from reconciler.ops.transfer.adapters import StoreSink\n"),
    ("ops.transfer.walk", "from reconciler.ops.refresh import is_not_found\n"),
    ("ops.transfer.adapters", "from reconciler.registry.client import RegistryClient\n"),
    ("ops.transfer.adapters", "from reconciler.store.blobs.local import ContentFiles\n"),
])
def test_checker_catches_violations(module: str, source: str) -> None:
    assert violations(module, source), f"{module} importing that must be a violation"


def test_checker_allows_the_rule() -> None:
    assert violations("ops.copy", "from reconciler.store.protocol import Store\nfrom reconciler.model import Digest\n") == []
    assert violations("store.sqlite.store", "from reconciler.store.sqlite.files import X\n") == []
    # every store backend builds its blob storage with the shared factory
    assert violations("store.sqlite.store", "from reconciler.store.blobs import open_blobs\n") == []
    assert violations("store.postgres.store", "from reconciler.store.blobs import open_blobs\n") == []
    assert violations("cli.repo_cmds", "from reconciler.store.sqlite import SQLiteStore\n") == []
    # the server reads through the read view; ops may name any role
    assert violations("server.content", "from reconciler.store.roles.read import ReadView\n") == []
    assert violations("ops.export", "from reconciler.store.roles.read import ReadView\n") == []
    assert violations("ops.graph", "from reconciler.store.roles.content import ContentStore\n") == []
    # file formats implement the content interface; operations use the walk
    assert violations("ops.formats.filesource", "from reconciler.ops.transfer.interface import Consume\n") == []
    assert violations("ops.upload", "from reconciler.ops.transfer.walk import transfer\n") == []
    assert violations("ops.transfer.walk", "from reconciler.ops.parallel import run_bounded\n") == []
    assert violations("ops.transfer.walk", "from reconciler.ops.transfer.interface import ContentSink\n") == []


@pytest.mark.parametrize("module,source", [
    ("ops.fetch", "import requests\n"),
    ("ops.v1.sync", "from urllib3.util import Retry\n"),
    ("ops.export", "import sqlite3\n"),
    ("server.blobs", "import boto3\n"),
    ("server.content", "from psycopg import sql\n"),
    ("plan.observe", "import http.client\n"),
])
def test_checker_catches_adapter_libraries(module: str, source: str) -> None:
    assert library_violations(module, source), f"{module} importing that must be a violation"


def test_adapters_may_use_their_libraries() -> None:
    assert library_violations("registry.session", "import requests\n") == []
    assert library_violations("store.sqlite.store", "import sqlite3\n") == []
    assert library_violations("store.blobs.s3", "import boto3\n") == []
    assert library_violations("server.listing", "from urllib.parse import urlencode\n") == []
