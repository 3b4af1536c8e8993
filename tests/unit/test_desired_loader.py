"""The loader's good path: the shipped examples load into the expected frozen values, the
schema is a valid 2020-12 schema kept in one place, the reference documents every key,
the demo images are reproducible, and ``reconciler validate`` exits as documented."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler.desired import ALL, CopySpec, TagPin, Upload, load_desired
from reconciler.desired.schema import load_schema
from reconciler.errors import InvalidInput
from reconciler.model import Digest
from reconciler.model.reference import NAME_RE, TAG_RE
from tests.support.archives import member_bytes

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
V2S2_MANIFEST = "sha256:a673fc08e7d673f76545b73b94ab1fdac2a4f531cedf4c84b2599c98bb5f07bd"


def test_schema_is_valid_2020_12() -> None:
    schema = json.loads((ROOT / "schemas" / "repos.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_packaged_schema_is_the_canonical_one() -> None:
    canonical = (ROOT / "schemas" / "repos.schema.json").read_bytes()
    packaged = (ROOT / "reconciler" / "schemas" / "repos.schema.json").read_bytes()
    assert packaged == canonical, "run: cp schemas/repos.schema.json reconciler/schemas/repos.schema.json"
    assert load_schema() == json.loads(canonical)


def _walk(schema: dict[str, Any], node: dict[str, Any], path: str, out: list[str]) -> None:
    """Every documented property path, e.g. ``repositories.<id>.copy[].from``."""
    if "$ref" in node:
        node = {**schema["$defs"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        _walk(schema, node["items"], path + "[]", out)
    for key, sub in node.get("properties", {}).items():
        child = f"{path}.{key}" if path else key
        out.append(child)
        _walk(schema, sub, child, out)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        placeholder = {"registries": "<name>", "repositories": "<id>"}.get(path, "<tag>")
        out.append(f"{path}.{placeholder}")
        _walk(schema, extra, f"{path}.{placeholder}", out)


def test_every_schema_property_is_documented_and_described() -> None:
    schema = load_schema()
    paths: list[str] = []
    _walk(schema, schema, "", paths)
    assert len(paths) > 40  # the walk found the tree, not just the top level
    doc = (ROOT / "docs" / "repos-yaml.md").read_text()
    missing = [p for p in paths if f"`{p}`" not in doc]
    assert missing == [], f"docs/repos-yaml.md does not document: {missing}"

    def undescribed(node: Any, where: str) -> list[str]:
        out = []
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    out.append(f"{where}.{key}")
            for key, sub in node.items():
                out += undescribed(sub, f"{where}/{key}")
        return out

    assert undescribed(schema, "#") == []


def test_every_object_is_closed() -> None:
    def open_objects(node: Any, where: str) -> list[str]:
        out = []
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                out.append(where)
            for key, sub in node.items():
                out += open_objects(sub, f"{where}/{key}")
        return out

    assert open_objects(load_schema(), "#") == []


def test_schema_patterns_match_the_model() -> None:
    defs = load_schema()["$defs"]
    assert defs["tag"]["pattern"] == TAG_RE.pattern
    assert defs["repository"]["properties"]["publish"]["pattern"] == NAME_RE.pattern


def test_demo_loads_into_the_expected_frozen_values() -> None:
    path = EXAMPLES / "demo.yaml"
    state = load_desired(path)
    assert state.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert state.path == path.resolve() and state.version == 1 and dict(state.registries) == {}
    assert list(state.repositories) == ["schema2", "containers", "containers2"]
    schema2, containers, containers2 = state.repositories.values()
    images = EXAMPLES / "images"
    assert schema2.uploads == (Upload(images / "hello-v2s2.tar", "latest"),)
    assert schema2.pins == (TagPin("v1", digest=Digest.parse(V2S2_MANIFEST)),)
    assert (schema2.publish, schema2.protected, schema2.prune) == ("pulpdemo/schema2", False, False)
    assert containers.uploads == (Upload(images / "hello-multiarch-oci.tar", "1.0"),)
    assert containers2.copies == (CopySpec("containers", tags=("1.0",)), CopySpec("schema2", manifests=ALL))
    assert containers2.pins == (TagPin("stable", source_repo="containers", source_tag="1.0"),)
    assert (containers2.publish, containers2.protected) == ("prod/hello", True)
    assert all(r.feed is None and not r.mirror and r.tag_filter.is_all for r in state.repositories.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        containers2.publish = "x"  # type: ignore[misc]  # on purpose: the spec is frozen
    with pytest.raises(TypeError):
        state.repositories["x"] = containers2  # type: ignore[index]  # on purpose: a read-only mapping


def test_repos_example_merges_defaults_once() -> None:
    state = load_desired(EXAMPLES / "repos.yaml")
    hub = state.registries["hub"]
    assert (hub.url, hub.username_env, hub.password_env, hub.max_concurrency, hub.tls_verify) == \
        ("https://registry-1.docker.io", "HUB_USER", "HUB_TOKEN", 4, True)
    repos = state.repositories
    assert repos["synctest"].feed is hub and repos["synctest"].mirror
    assert repos["synctest"].tag_filter.select(["latest", "1.36.1", "1.36.1-uclibc", "1.35.0"]) == ["latest", "1.36.1"]
    # busybox has its own filter: the default exclude is replaced, not combined
    assert repos["busybox"].tag_filter.exclude == ()
    assert repos["busybox"].tag_filter.select(["1.36.1", "1.38.0", "latest"]) == ["1.36.1", "latest"]
    alpine = repos["alpine"].feed
    assert alpine is not None and alpine.url == "https://registry-1.docker.io" and alpine.tls_verify
    assert repos["schema2"].feed is None and repos["schema2"].tag_filter.is_all  # defaults.tags is for synced repos
    assert repos["containers"].copies[0] == CopySpec("busybox", tags=ALL)
    c2 = repos["containers2"]
    assert (c2.prune, c2.protected, c2.publish, c2.remove.tags) == (True, True, "prod/busybox", ("old",))
    assert c2.pins == (TagPin("stable", source_repo="synctest", source_tag="1.36.1"),)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        load_desired(tmp_path / "repos.yaml")


def test_demo_images_are_reproducible(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(EXAMPLES / "make_images.py"), str(tmp_path)], check=True,
                   capture_output=True, timeout=60)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in (EXAMPLES / "images").iterdir())
    for name in made:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / "images" / name).read_bytes(), \
            f"{name} differs: run python3 examples/make_images.py and commit the result"


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: member_bytes(tf, m) for m in tf.getmembers() if m.isfile()}


def test_demo_images_have_the_documented_shape() -> None:
    v2s2 = _members(EXAMPLES / "images" / "hello-v2s2.tar")
    assert v2s2["version"] == b"Directory Transport Version: 1.1\n"
    manifest = json.loads(v2s2["manifest.json"])
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    for desc in [manifest["config"], *manifest["layers"]]:
        blob = v2s2[desc["digest"].split(":")[1]]  # blobs named by bare hex
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == desc["digest"]
    # the digest demo.yaml pins is the uploaded manifest's
    assert "sha256:" + hashlib.sha256(v2s2["manifest.json"]).hexdigest() == V2S2_MANIFEST
    assert V2S2_MANIFEST in (EXAMPLES / "demo.yaml").read_text()

    oci = _members(EXAMPLES / "images" / "hello-multiarch-oci.tar")
    assert json.loads(oci["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (top,) = json.loads(oci["index.json"])["manifests"]
    assert top["annotations"] == {"org.opencontainers.image.ref.name": "1.0"}
    index = json.loads(oci["blobs/sha256/" + top["digest"].split(":")[1]])
    platforms = [(m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant"))
                 for m in index["manifests"]]
    assert platforms == [("linux", "amd64", None), ("linux", "arm64", "v8")]
    for path, data in oci.items():
        if path.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == path.rsplit("/", 1)[1]
    assert all(p.stat().st_size < 16_384 for p in (EXAMPLES / "images").iterdir())


@pytest.mark.parametrize("example", ["demo.yaml", "repos.yaml"])
def test_validate_command_accepts_the_examples(example: str, run_cli: Any) -> None:
    proc = run_cli("validate", "-f", str(EXAMPLES / example))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.match(rf"OK {re.escape(str(EXAMPLES / example))}: \d+ repositories", proc.stdout)
    proc = run_cli("validate", "-f", str(EXAMPLES / example), "--json")
    assert (proc.returncode, json.loads(proc.stdout)) == (0, [])


def test_validate_command_prints_every_problem(run_cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "repos.yaml"
    bad.write_text("version: 1\nrepositories:\n  web: {publish: Web, prune: maybe}\n")
    proc = run_cli("validate", "-f", "repos.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "repos.yaml:3:18: repositories.web.publish: invalid publish name 'Web' (use lowercase letters and digits, "
        "separated by '.', '_', '__' or '-', in '/'-joined components, e.g. 'pulpdemo/synctest')",
        "repos.yaml:3:30: repositories.web.prune: expected true or false, got a string ('maybe')",
    ]
    assert "error: repos.yaml: 2 problems" in proc.stderr
    proc = run_cli("validate", "-f", "repos.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)[1] == {"file": "repos.yaml", "line": 3, "column": 30,
                                          "path": "repositories.web.prune",
                                          "message": "expected true or false, got a string ('maybe')"}
