"""The air gap end to end: side A mirrors Docker schema2, manifest list, OCI and OCI index
repositories from a real registry; ``export --all`` writes a bundle; side B declares its
repositories with ``feed: bundle:bundles`` (a folder of bundles), applies, serves, and
skopeo pulls every tag from B with A's digest. Then a delta (``--since``) carries only
the new content, and a tag removed upstream disappears on B too (``mirror: true``). A
delta on a side without its base is refused, naming the base.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import Image, build_image, build_multiarch
from tests.support.pusher import delete_manifest, push_image
from tests.support.registry import RunningRegistry
from tests.support.serving import REPO_ROOT, require_binary, run_server

pytestmark = pytest.mark.integration

KINDS: dict[str, Callable[[str], Image]] = {"docker": lambda n: build_image(n), "list": lambda n: build_multiarch(n),
         "oci": lambda n: build_image(n, oci=True), "index": lambda n: build_multiarch(n, oci=True)}


def cli(store: Path | None, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "reconciler", *(["--store", str(store)] if store else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": pythonpath})
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def side_a_yaml(path: Path, registry: RunningRegistry, names: dict[str, str]) -> Path:
    repos = "".join(f"  {kind}: {{feed: up, upstream_name: {name}, mirror: true, publish: mirror/{kind}}}\n"
                    for kind, name in names.items())
    path.write_text(f'version: 1\nregistries:\n  up: {{url: "{registry.url}", tls_verify: false}}\nrepositories:\n'
                    + repos)
    return path


def side_b_yaml(path: Path, feed: str) -> Path:
    repos = "".join(f"  {kind}:\n    feed: bundle:{feed}\n    upstream_name: {kind}\n    mirror: true\n"
                    f"    publish: mirror/{kind}\n" for kind in KINDS)
    path.write_text("version: 1\nrepositories:\n" + repos)
    return path


def tag_digests(store: Path) -> dict[tuple[str, str], str]:
    s = SQLiteStore(store)
    try:
        return {(r.id, t): str(e.digest) for r in s.repository_list() for t, e in s.version_get(r.id).tags.items()}
    finally:
        s.close()


def pulled_digests(store: Path, refs: list[tuple[str, str]], log: Path) -> dict[tuple[str, str], str]:
    """What skopeo gets from ``reconciler serve`` over ``store``: the sha256 of the raw
    manifest bytes of each (repository, tag), pulled by its publish name."""
    out = {}
    with run_server(store, log) as server:
        for repo, tag in refs:
            proc = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                                   f"docker://{server.host}/mirror/{repo}:{tag}"], capture_output=True, timeout=120)
            assert proc.returncode == 0, proc.stderr.decode()
            out[(repo, tag)] = "sha256:" + hashlib.sha256(proc.stdout).hexdigest()
    return out


def carried(bundle: Path) -> set[str]:
    with tarfile.open(bundle) as tar:
        return {m.name.rsplit("/", 1)[1] for m in tar.getmembers() if m.name.startswith("blobs/")}


def test_bundles_carry_every_digest_and_deltas_carry_only_what_is_new(
        registry: RunningRegistry, repo_name: str, tmp_path: Path) -> None:
    require_binary("skopeo", "skopeo")
    names = {kind: f"{repo_name}-{kind}" for kind in KINDS}
    images: dict[str, Image] = {}
    for kind, name in names.items():
        images[kind] = KINDS[kind](name)
        push_image(registry.url, name, images[kind], ["1.0", "latest"])
    old = build_image(f"{repo_name}-old")
    push_image(registry.url, names["docker"], old, ["0.9"])
    a, b = tmp_path / "a", tmp_path / "b"
    yaml_a = side_a_yaml(tmp_path / "a.yaml", registry, names)
    cli(a, "apply", "-f", str(yaml_a))

    # connected side: a full bundle; the transfer; the disconnected side imports it
    transfer = tmp_path / "transfer"
    transfer.mkdir()
    cli(a, "export", "--all", "-o", str(transfer / "bundle-1.tar"))
    assert "ok" in cli(None, "bundle", "verify", str(transfer / "bundle-1.tar")).stdout
    yaml_b = side_b_yaml(tmp_path / "b.yaml", "transfer")
    plan = cli(b, "plan", "-f", str(yaml_b)).stdout
    assert "+ tag 0.9" in plan and "Plan: " in plan
    cli(b, "apply", "-f", str(yaml_b))
    assert "No changes." in cli(b, "plan", "-f", str(yaml_b)).stdout
    on_a = tag_digests(a)
    assert tag_digests(b) == on_a and len(on_a) == 9
    assert pulled_digests(b, sorted(on_a), tmp_path / "b1.log") == on_a

    # a week later: a new image upstream, and a tag removed upstream (mirror removes it on A)
    newer = build_image(f"{repo_name}-2.0", oci=True)
    push_image(registry.url, names["oci"], newer, ["2.0"])
    delete_manifest(registry.url, names["docker"], str(old.digest))
    cli(a, "apply", "-f", str(yaml_a))
    cli(a, "export", "--all", "-o", str(transfer / "bundle-2.tar"), "--since", str(transfer / "bundle-1.tar"))
    # the delta carries the new image and nothing the first bundle had
    assert carried(transfer / "bundle-2.tar") == {newer.digest.hex} | {d.split(":")[1] for d in newer.blobs}
    manifest = json.loads(subprocess.run(["tar", "-xOf", str(transfer / "bundle-2.tar"), "bundle.json"],
                                         capture_output=True, check=True).stdout)
    assert manifest["base"]["digest"].startswith("sha256:")

    plan = cli(b, "plan", "-f", str(yaml_b)).stdout
    assert "+ tag 2.0" in plan and "- tag 0.9" in plan, plan
    cli(b, "apply", "-f", str(yaml_b))
    on_a = tag_digests(a)
    assert ("docker", "0.9") not in on_a and ("oci", "2.0") in on_a
    assert tag_digests(b) == on_a
    assert pulled_digests(b, sorted(on_a), tmp_path / "b2.log") == on_a
    assert cli(b, "store", "check").returncode == 0

    # a side that never imported the first bundle cannot use the delta alone
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(transfer / "bundle-2.tar", alone)
    refused = cli(tmp_path / "c", "plan", "-f", str(side_b_yaml(tmp_path / "c.yaml", "alone")), check=False)
    assert refused.returncode == 1
    assert "is a delta against the bundle sha256:" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert "apply that bundle (or a full bundle) first" in refused.stdout + refused.stderr

    # the one-off form, from the folder (the newest bundle and its base)
    d = tmp_path / "d"
    cli(d, "sync", "index", "--feed", f"bundle:{transfer}", "--upstream-name", "index")
    assert tag_digests(d) == {k: v for k, v in on_a.items() if k[0] == "index"}
