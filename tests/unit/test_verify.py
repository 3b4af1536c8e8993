"""``reconciler verify``: cosign signatures checked against public keys, through the real
CLI over a real store: classic ``.sig`` tags and OCI 1.1 referrers, ECDSA/RSA/Ed25519
keys; unsigned, wrongly signed (another key, a payload for another digest, a tampered
payload) and missing signatures refused with their reasons; an index by itself or by
every child; a signature whose subject is another image never counts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TypedDict

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from reconciler.ops.verify import is_signature_tag, load_keys
from reconciler.store.sqlite import SQLiteStore
from tests.support import supplychain as sc
from tests.support.cli import RunCli
from tests.support.imagegen import Image, build_image, build_multiarch
from tests.support.serving import commit_tags


class VerdictJson(TypedDict):
    """One tag of ``verify --json`` (``Verdict.to_json``)."""

    tag: str
    digest: str | None
    ok: bool
    reason: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    key, other = sc.new_key(), sc.new_key()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    for name, k in (("release.pub", key), ("other.pub", other), ("rsa.pub", rsa_key), ("ed.pub", ed_key)):
        (root / name).write_bytes(sc.public_pem(k))
    img = {n: build_image(f"verify-{n}", oci=True) for n in
           ("classic", "referrer", "unsigned", "otherkey", "wrongdigest", "tampered", "rsa", "ed", "copied")}
    multi, half = build_multiarch("verify-multi", oci=True), build_multiarch("verify-half", oci=True)
    tampered_sig = sc.cosign_signature(img["tampered"], key)
    body = tampered_sig.blobs[str(tampered_sig.manifest.layers[0].digest)]
    altered = body.replace(b'"optional":null', b'"optional":{"x":1}')
    # the same signature annotation over other bytes: what tampering with the payload gives
    tampered = sc.cosign_signature(img["tampered"], payload=altered, signature=base64.b64decode(
        tampered_sig.manifest.layers[0].annotations[sc.COSIGN_SIGNATURE_ANNOTATION]))
    tags: dict[str, Image] = {n: i for n, i in img.items()}
    tags |= {"multi": multi, "half": half}
    sigs: dict[str, Image] = {
        sc.cosign_tag(img["classic"].digest): sc.cosign_signature(img["classic"], key),
        sc.cosign_tag(img["otherkey"].digest): sc.cosign_signature(img["otherkey"], other),
        sc.cosign_tag(img["wrongdigest"].digest): sc.cosign_signature(
            img["wrongdigest"], key, payload=sc.simple_signing_payload(img["classic"].digest, "registry.example/app")),
        sc.cosign_tag(img["tampered"].digest): tampered,
        sc.cosign_tag(img["rsa"].digest): sc.cosign_signature(img["rsa"], rsa_key),
        sc.cosign_tag(img["ed"].digest): sc.cosign_signature(img["ed"], ed_key),
    }
    for child in multi.children:
        sigs[sc.cosign_tag(child.digest)] = sc.cosign_signature(child, key)
    sigs[sc.cosign_tag(half.children[0].digest)] = sc.cosign_signature(half.children[0], key)
    referrers = (sc.cosign_referrer_signature(img["referrer"], key),
                 # a valid signature of the classic image, attached to "copied": its subject is another image
                 sc.cosign_referrer_signature(img["classic"], key))
    store = SQLiteStore(root / "store")
    try:
        commit_tags(store, "app", {**tags, **sigs}, extra=referrers)
    finally:
        store.close()
    return root


def verify(run_cli: RunCli, root: Path, *args: str) -> tuple[int, dict[str, VerdictJson]]:
    proc = run_cli("verify", "app", *args, "--json", store=root / "store")
    verdicts: list[VerdictJson] = json.loads(proc.stdout)
    return proc.returncode, {v["tag"]: v for v in verdicts}


def test_each_case_with_its_reason(world: Path, run_cli: RunCli) -> None:
    key = str(world / "release.pub")
    rc, got = verify(run_cli, world, "--key", key)
    assert rc == 1
    ok = {t for t, v in got.items() if v["ok"]}
    assert ok == {"classic", "referrer", "multi"}
    assert got["classic"]["reason"].startswith(f"verified by {key}")
    assert "has no cosign signature" in got["unsigned"]["reason"]
    assert got["unsigned"]["reason"].startswith(f"no signature verified by {key}")
    assert "does not verify with the key" in got["otherkey"]["reason"]
    assert "payload is for" in got["wrongdigest"]["reason"]
    assert "does not verify with the key" in got["tampered"]["reason"]
    assert "has no cosign signature" in got["copied"]["reason"]
    assert got["multi"]["reason"] == "every child verified"
    assert not got["half"]["ok"] and "its child" in got["half"]["reason"]
    # the signatures' own tags are not images to verify
    assert not any(is_signature_tag(t) for t in got)


def test_rsa_and_ed25519_keys_and_several_keys(world: Path, run_cli: RunCli) -> None:
    rc, got = verify(run_cli, world, "rsa", "ed", "otherkey", "--key", str(world / "rsa.pub"),
                     "--key", str(world / "ed.pub"), "--key", str(world / "other.pub"))
    assert rc == 0 and all(v["ok"] for v in got.values()) and set(got) == {"rsa", "ed", "otherkey"}
    proc = run_cli("verify", "app", "classic", "--key", str(world / "release.pub"), store=world / "store")
    assert proc.returncode == 0 and proc.stdout.startswith("ok    classic")


def test_bad_keys_are_clear_errors(world: Path, run_cli: RunCli) -> None:
    (world / "private.pem").write_text("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
    proc = run_cli("verify", "app", "--key", str(world / "private.pem"), store=world / "store")
    assert proc.returncode == 1 and "is not a PEM public key" in proc.stderr and "hint:" in proc.stderr
    proc = run_cli("verify", "app", "--key", str(world / "missing.pub"), store=world / "store")
    assert proc.returncode == 1 and "cannot read the key" in proc.stderr
    with pytest.raises(Exception, match="no key given"):
        load_keys([])


def test_an_unknown_tag_fails(world: Path, run_cli: RunCli) -> None:
    rc, got = verify(run_cli, world, "nope", "--key", str(world / "release.pub"))
    assert rc == 1 and got["nope"]["reason"].startswith("no tag nope")
    assert got["nope"]["digest"] is None
