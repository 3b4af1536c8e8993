"""Start-up weight: the commands that need no network, no store or no signature check must
not import the libraries for them (issue 24, start-up target).

Each check runs the command in a fresh interpreter and lists what it imported; a heavy
module coming back through a module-level import on one of these paths fails here. Each
also has a control that does need the module, so the check cannot pass by never looking.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: what `validate` and a plan without a `verify:` policy never need: the HTTP stack, the
#: cosign signature check (cryptography, and bcrypt under it), the store, the full schema
#: validator (only for a file the generated check rejects) and importlib.resources (which
#: pulls tempfile, shutil, zipfile and the compression modules)
NETWORK = ("requests", "urllib3", "http.client", "email", "ssl")
SIGNATURES = ("cryptography", "bcrypt")
VALIDATE_NEVER = (*NETWORK, *SIGNATURES, "sqlite3", "jsonschema", "fastjsonschema", "importlib.resources",
                  "reconciler.api", "reconciler.store", "reconciler.registry", "reconciler.plan")


def imported(*argv: str) -> set[str]:
    """The modules in ``sys.modules`` after ``reconciler ARGV`` ran in a new interpreter."""
    code = ("import json, sys\nfrom reconciler.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    names: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return set(names)


def loaded(modules: set[str], *names: str) -> list[str]:
    return sorted(n for n in names if n in modules)


def verify_yaml(root: Path) -> Path:
    """A valid file whose repository has a ``verify:`` policy (so its key is read)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    (root / "cosign.pub").write_bytes(key.public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    path = root / "verify.yaml"
    path.write_text("version: 1\nrepositories:\n  app: {}\n  prod:\n    copy: [{from: app, tags: all}]\n"
                    "    verify: {cosign_keys: [cosign.pub]}\n")
    return path


def test_validate_imports_no_network_signature_or_store_code(tmp_path: Path) -> None:
    modules = imported("validate", "-f", str(EXAMPLES / "demo.yaml"))
    assert "reconciler.desired.loader" in modules  # it did load the file
    assert loaded(modules, *VALIDATE_NEVER) == []


def test_version_imports_neither_yaml_nor_the_desired_state() -> None:
    modules = imported("--version")
    assert loaded(modules, "yaml", "reconciler.desired", "reconciler.model", *VALIDATE_NEVER) == []


def test_cryptography_is_imported_only_where_a_key_is_read(tmp_path: Path) -> None:
    # control: a `verify:` policy reads its key, so the same command does import it
    modules = imported("validate", "-f", str(verify_yaml(tmp_path)))
    assert loaded(modules, "cryptography") == ["cryptography"]


@pytest.mark.parametrize("refresh", [False, True], ids=["no-refresh", "refresh"])
def test_a_plan_without_verify_imports_no_signature_code(tmp_path: Path, refresh: bool) -> None:
    # the registry is a closed port: with the refresh, the plan does load the HTTP stack
    # (the control) and reports the repository as not refreshed
    path = tmp_path / "repos.yaml"
    path.write_text("version: 1\nregistries:\n  up:\n    url: http://127.0.0.1:9\n    retries: 0\n"
                    "repositories:\n  app:\n    feed: up\n    upstream_name: library/app\n")
    modules = imported("--store", str(tmp_path / "store"), "plan", "-f", str(path),
                       *([] if refresh else ["--no-refresh"]))
    assert "reconciler.plan.make" in modules
    assert loaded(modules, *SIGNATURES) == []
    assert ("requests" in modules) is refresh
    if not refresh:  # (urllib3 imports importlib.metadata, and that importlib.resources)
        assert loaded(modules, "importlib.resources") == []
