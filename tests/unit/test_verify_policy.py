"""The ``verify:`` policy of repos.yaml: a repository refuses, in the plan, every tag that
would point at an image without a cosign signature one of its keys verifies, and then
nothing of that repository is applied while the other repositories are; and copies bring
the signatures along (classic ``.sig`` tags and OCI 1.1 referrers), so a copied signed
image passes. Through the real CLI over a real store; signatures in cosign's byte formats
(tests/support/supplychain.py)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from reconciler.store.sqlite import SQLiteStore
from tests.support import supplychain as sc
from tests.support.cli import RunCli
from tests.support.imagegen import Image, build_image, build_multiarch
from tests.support.serving import commit_tags

#: target repository -> the tag of ``app`` it copies (each its own case)
CASES = {"good": "classic", "viaref": "referrer", "unsigned": "unsigned", "otherkey": "otherkey",
         "wrongdigest": "wrongdigest", "tampered": "tampered", "copied": "copied", "multi": "multi", "half": "half"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("policy")
    key, other = sc.new_key(), sc.new_key()
    (root / "keys").mkdir()
    (root / "keys" / "release.pub").write_bytes(sc.public_pem(key))
    img = {n: build_image(f"policy-{n}", oci=True) for n in
           ("classic", "referrer", "unsigned", "otherkey", "wrongdigest", "tampered", "copied")}
    multi, half = build_multiarch("policy-multi", oci=True), build_multiarch("policy-half", oci=True)
    good_sig = sc.cosign_signature(img["tampered"], key)
    body = good_sig.blobs[str(good_sig.manifest.layers[0].digest)]
    tampered = sc.cosign_signature(img["tampered"], payload=body.replace(b'"optional":null', b'"optional":{"x":1}'),
                                   signature=base64.b64decode(
                                       good_sig.manifest.layers[0].annotations[sc.COSIGN_SIGNATURE_ANNOTATION]))
    sigs: dict[str, Image] = {
        sc.cosign_tag(img["classic"].digest): sc.cosign_signature(img["classic"], key),
        sc.cosign_tag(img["otherkey"].digest): sc.cosign_signature(img["otherkey"], other),
        sc.cosign_tag(img["wrongdigest"].digest): sc.cosign_signature(
            img["wrongdigest"], key, payload=sc.simple_signing_payload(img["classic"].digest, "registry.example/app")),
        sc.cosign_tag(img["tampered"].digest): tampered,
    }
    for child in multi.children:
        sigs[sc.cosign_tag(child.digest)] = sc.cosign_signature(child, key)
    sigs[sc.cosign_tag(half.children[0].digest)] = sc.cosign_signature(half.children[0], key)
    referrer_sig = sc.cosign_referrer_signature(img["referrer"], key)
    sbom = sc.oci_referrer(img["referrer"], "application/spdx+json", b'{"spdxVersion":"SPDX-2.3"}')
    # a valid signature of "classic" as an OCI 1.1 referrer: its subject is not "copied"
    stray = sc.cosign_referrer_signature(img["classic"], key)
    store = SQLiteStore(root / "store")
    try:
        commit_tags(store, "app", {**img, "multi": multi, "half": half, **sigs}, extra=(referrer_sig, sbom, stray))
    finally:
        store.close()
    return {"root": root, "img": img, "multi": multi, "referrer_sig": referrer_sig, "sbom": sbom, "stray": stray,
            "sigs": sigs}


def write_yaml(root: Path, name: str, repos: dict[str, Any]) -> Path:
    doc = {"version": 1, "repositories": {"app": {}, **repos}}
    path = root / name
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def verified(copy: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"copy": [{"from": "app", **copy}], "verify": {"cosign_keys": ["keys/release.pub"]}, **extra}


def test_each_case_refused_with_its_reason_and_the_rest_applied(world: dict[str, Any], tmp_path: Path,
                                                               run_cli: RunCli) -> None:
    root = world["root"]
    store = tmp_path / "store"
    shutil.copytree(root / "store", store)
    repos = {target: verified({"tags": [tag]}, publish=f"prod/{target}") for target, tag in CASES.items()}
    path = write_yaml(root, "cases.yaml", repos)
    plan = run_cli("plan", "-f", str(path), "--json", store=store)
    assert plan.returncode == 1, plan.stderr
    doc = json.loads(plan.stdout)
    refused = {f["repo"]: f for f in doc["failed_tags"]}
    assert all(f["refused"] for f in refused.values())
    assert set(refused) == {"unsigned", "otherkey", "wrongdigest", "tampered", "copied", "half"}
    assert {f["tag"] for f in refused.values()} == {CASES[r] for r in refused}
    reasons = {r: f["error"] for r, f in refused.items()}
    assert reasons["unsigned"] == "no signature verified by keys/release.pub (the image has no cosign signature)"
    assert "does not verify with the key" in reasons["otherkey"]
    assert f"payload is for {world['img']['classic'].digest}, not this image" in reasons["wrongdigest"]
    assert "does not verify with the key" in reasons["tampered"]
    assert "has no cosign signature" in reasons["copied"]  # the stray signature names another subject
    assert "its child" in reasons["half"]
    # refused repositories have no actions at all; the signed ones are planned in full
    planned = {a["repo"] for a in doc["actions"]}
    assert planned >= {"good", "viaref", "multi"} and not planned & set(refused)
    assert "copy_referrers" in {a["op"] for a in doc["actions"] if a["repo"] == "good"}

    text = run_cli("plan", "-f", str(path), store=store)
    assert "! tag unsigned   REFUSED: no signature verified by keys/release.pub" in text.stdout
    assert "refused by its verify policy (keys/release.pub)" in text.stdout
    assert "error: unsigned: tag unsigned: no signature verified by keys/release.pub" in text.stderr
    md = run_cli("plan", "-f", str(path), "--markdown", store=store)
    assert "refused by a verify policy" in md.stdout and "`unsigned` tag `unsigned`" in md.stdout

    applied = run_cli("apply", "-f", str(path), "--json", store=store)
    assert applied.returncode == 1
    result = json.loads(applied.stdout)["result"]
    failed = {r["id"] for r in result["actions"] if r["status"] == "failed"}
    assert "unsigned/verify/unsigned" in failed
    repos_now = json.loads(run_cli("repo", "list", "--json", store=store, check=True).stdout)
    names = {r["id"] for r in repos_now}
    assert {"good", "viaref", "multi"} <= names and not names & set(refused)
    # what passed holds its signatures, so `reconciler verify` agrees with the plan
    for target in ("good", "viaref", "multi"):
        proc = run_cli("verify", target, "--key", str(root / "keys" / "release.pub"), store=store)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_one_unsigned_tag_refuses_the_whole_repository(world: dict[str, Any], tmp_path: Path,
                                                       run_cli: RunCli) -> None:
    root = world["root"]
    shutil.copytree(root / "store", tmp_path / "store")
    path = write_yaml(root, "mixed.yaml", {"prod": verified({"tags": ["classic", "unsigned"]}),
                                           "plain": {"copy": [{"from": "app", "tags": ["unsigned"]}]}})
    proc = run_cli("apply", "-f", str(path), store=tmp_path / "store")
    assert proc.returncode == 1
    assert "prod: tag unsigned" in proc.stderr or "prod/verify/unsigned" in proc.stderr
    repos_now = {r["id"] for r in json.loads(run_cli("repo", "list", "--json", store=tmp_path / "store",
                                                     check=True).stdout)}
    assert "prod" not in repos_now and "plain" in repos_now  # the other repository proceeds


def test_a_copy_without_referrers_brings_no_signature_so_it_is_refused(world: dict[str, Any], tmp_path: Path,
                                                                       run_cli: RunCli) -> None:
    root = world["root"]
    path = write_yaml(root, "noref.yaml", {"prod": verified({"tags": ["classic"], "referrers": False})})
    proc = run_cli("plan", "-f", str(path), "--json", store=root / "store")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert [f["tag"] for f in doc["failed_tags"]] == ["classic"]
    assert doc["actions"] == []


def test_copy_brings_classic_tags_and_referrers_recursively_by_type(world: dict[str, Any], tmp_path: Path,
                                                                    run_cli: RunCli) -> None:
    root = world["root"]
    shutil.copytree(root / "store", tmp_path / "store")
    store = tmp_path / "store"
    path = write_yaml(root, "copies.yaml", {
        "all": {"copy": [{"from": "app", "tags": ["classic", "referrer"]}]},
        "sboms": {"copy": [{"from": "app", "tags": ["referrer"], "referrers": {"artifact_types": [
            "application/spdx+json"]}}]},
        "bydigest": {"copy": [{"from": "app", "manifests": [str(world["img"]["classic"].digest)]}]}})
    plan = run_cli("plan", "-f", str(path), store=store)
    # classic's .sig tag, and a signature of it as an OCI 1.1 referrer
    assert "+ copy 2 referrers of classic from app: signature   declared in repos.yaml; 1 tag" in plan.stdout, \
        plan.stdout
    assert "+ copy 2 referrers of referrer from app: signature, SBOM" in plan.stdout
    assert "+ copy 1 referrer of referrer from app: SBOM" in plan.stdout
    run_cli("apply", "-f", str(path), store=store, check=True)
    s = SQLiteStore(store)
    try:
        every = s.version_get("all")
        sig_tag = sc.cosign_tag(world["img"]["classic"].digest)
        assert every.tags[sig_tag].digest == world["sigs"][sig_tag].digest
        assert every.tags[sig_tag].origin.value == "copy"
        held = every.content.manifests
        assert {world["referrer_sig"].digest, world["sbom"].digest} <= held
        assert world["stray"].digest in held
        sboms = s.version_get("sboms").content.manifests
        assert world["sbom"].digest in sboms and world["referrer_sig"].digest not in sboms
        # a referrer of an image not copied stays behind
        assert world["stray"].digest not in sboms
        # a copy by digest brings the classic tag of the digest it copies
        assert sig_tag in s.version_get("bydigest").tags
    finally:
        s.close()
    # the referrers are declared: a second plan has nothing to do
    again = run_cli("plan", "-f", str(path), "--json", store=store)
    assert again.returncode == 0 and json.loads(again.stdout)["actions"] == []


def test_the_one_off_copy_brings_the_signatures_too(world: dict[str, Any], tmp_path: Path, run_cli: RunCli) -> None:
    shutil.copytree(world["root"] / "store", tmp_path / "store")
    store = tmp_path / "store"
    copied = run_cli("copy", "tag", "--from", "app", "--to", "one", "classic", "referrer", "--json", store=store,
                     check=True)
    # the images, their signatures (classic and OCI 1.1) and the SBOM, and the classic tag
    added = json.loads(copied.stdout)["details"]["copied"]
    assert added["manifests"] == 6 and added["tags"] == 3, added
    proc = run_cli("verify", "one", "--key", str(world["root"] / "keys" / "release.pub"), store=store)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = SQLiteStore(store)
    try:
        v = s.version_get("one")
        assert sc.cosign_tag(world["img"]["classic"].digest) in v.tags
        assert {world["referrer_sig"].digest, world["sbom"].digest} <= v.content.manifests
    finally:
        s.close()
    # what a later removal of the image takes with it
    run_cli("remove", "manifest", "one", str(world["img"]["classic"].digest), store=store, check=True)
    s = SQLiteStore(store)
    try:
        v = s.version_get("one")
        assert not any(t.startswith("sha256-") for t in v.tags) and set(v.tags) == {"referrer"}
        assert world["stray"].digest not in v.content.manifests
    finally:
        s.close()
    assert run_cli("store", "check", store=store).returncode == 0
