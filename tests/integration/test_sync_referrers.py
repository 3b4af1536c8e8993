"""Sync brings referrers (``referrers:`` in repos.yaml), end to end with the real CLI:
from a distribution registry (no referrers API: the tag-schema index and cosign's tags)
and from ``reconciler serve`` (the referrers API), recursively (a signature of an SBOM),
filtered by artifact type, off with ``false``; the plan's referrer lines; the no-change
refresh's request count; what ``serve`` then answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from reconciler.model import Digest
from reconciler.store.sqlite import SQLiteStore
from tests.support import supplychain as sc
from tests.support.cli import RunCli
from tests.support.imagegen import build_image
from tests.support.pusher import delete_manifest, push_image
from tests.support.registry import RunningRegistry
from tests.support.serving import commit_tags, run_server

pytestmark = pytest.mark.integration


class Signed:
    def __init__(self, name: str) -> None:
        self.image = build_image(name, oci=True)
        self.sig = sc.cosign_signature(self.image)
        self.sbom = sc.oci_referrer(self.image, sc.SPDX, b'{"spdxVersion":"SPDX-2.3","n":"' + name.encode() + b'"}')
        self.sbom_sig = sc.oci_referrer(self.sbom, sc.SIGSTORE_BUNDLE, b'{"bundle":"' + name.encode() + b'"}')
        self.sig_tag = sc.cosign_tag(self.image.digest)

    def push(self, registry: RunningRegistry, name: str, tag: str = "1.0") -> None:
        push_image(registry.url, name, self.image, tags=(tag,))
        push_image(registry.url, name, self.sig, tags=(self.sig_tag,))
        for referrer in (self.sbom, self.sbom_sig):
            push_image(registry.url, name, referrer)
        push_image(registry.url, name, sc.tag_schema_index([self.sbom]), tags=(sc.tag_schema_tag(self.image.digest),))
        push_image(registry.url, name, sc.tag_schema_index([self.sbom_sig]), tags=(sc.tag_schema_tag(self.sbom.digest),))


def write_yaml(path: Path, url: str, upstream: str, referrers: str | None = None, tags: str = '["1.*"]') -> Path:
    option = f"\n    referrers: {referrers}" if referrers is not None else ""
    path.write_text(f"""version: 1
repositories:
  app:
    feed: {url}
    upstream_name: {upstream}
    tags: {{include: {tags}}}{option}
    publish: mirror/app
""")
    return path


def held(store: Path) -> tuple[set[str], set[Digest]]:
    s = SQLiteStore(store, create=False)
    try:
        v = s.version_get("app")
        return set(v.tags), set(v.content.manifests | v.content.indexes)
    finally:
        s.close()


def test_from_a_registry_without_the_api(registry: RunningRegistry, repo_name: str, tmp_path: Path,
                                         run_cli: RunCli) -> None:
    s = Signed("syncref-dist")
    s.push(registry, repo_name)
    yaml = write_yaml(tmp_path / "repos.yaml", registry.url, repo_name)
    store = tmp_path / "store"

    plan = run_cli("plan", "-f", str(yaml), store=store)
    assert plan.returncode == 0, plan.stderr
    line = next(x for x in plan.stdout.splitlines() if "referrers of 1.0" in x)
    assert "+ 3 referrers of 1.0: signature, SBOM" in line, plan.stdout
    applied = run_cli("apply", "-f", str(yaml), store=store)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    tags, manifests = held(store)
    # the tag filter selected 1.0 only; the cosign tag came as a referrer, the tag-schema
    # indexes did not (the referrers API replaces them here)
    assert tags == {"1.0", s.sig_tag}
    assert {s.image.digest, s.sig.digest, s.sbom.digest, s.sbom_sig.digest} <= manifests

    mark = registry.mark()
    again = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert again.returncode == 0 and again.stdout.rstrip().endswith("No changes."), again.stdout + again.stderr
    sent = registry.requests_since(mark)
    # no change: the tag list, a HEAD for 1.0, one referrers probe (404), the image's
    # tag-schema index, its cosign tag, the SBOM's tag-schema index
    assert sorted((a.method, a.kind) for a in sent if a.kind != "ping") == sorted(
        [("GET", "tags"), ("HEAD", "manifest"), ("GET", "other"), ("GET", "manifest"), ("GET", "manifest"),
         ("GET", "manifest")]), [(a.method, a.path, a.status) for a in sent]

    with run_server(store, tmp_path / "serve.log") as srv:
        listed = requests.get(f"{srv.url}/v2/mirror/app/referrers/{s.image.digest}", timeout=30).json()["manifests"]
        assert [d["digest"] for d in listed] == [str(s.sbom.digest)]
        listed = requests.get(f"{srv.url}/v2/mirror/app/referrers/{s.sbom.digest}", timeout=30).json()["manifests"]
        assert [d["digest"] for d in listed] == [str(s.sbom_sig.digest)]
        sig = requests.get(f"{srv.url}/v2/mirror/app/manifests/{s.sig_tag}",
                           headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=30)
        assert sig.status_code == 200 and sig.content == s.sig.manifest.raw


def test_a_new_signature_upstream_is_planned_as_a_referrer_line(registry: RunningRegistry, repo_name: str,
                                                                tmp_path: Path, run_cli: RunCli) -> None:
    s = Signed("syncref-later")
    push_image(registry.url, repo_name, s.image, tags=("1.0",))
    yaml = write_yaml(tmp_path / "repos.yaml", registry.url, repo_name)
    store = tmp_path / "store"
    assert run_cli("apply", "-f", str(yaml), store=store).returncode == 0
    push_image(registry.url, repo_name, s.sig, tags=(s.sig_tag,))
    plan = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", "--json", store=store)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    actions = [a for a in json.loads(plan.stdout)["actions"] if a["op"] == "sync_referrers"]
    assert len(actions) == 1 and actions[0]["tag"] == "1.0"
    assert actions[0]["referrer_tags"] == {s.sig_tag: str(s.sig.digest)}
    assert actions[0]["artifact_types"] == [sc.SIMPLE_SIGNING]
    drift = run_cli("drift", "-f", str(yaml), "--json", "--detailed-exitcode", store=store)
    assert drift.returncode == 2, drift.stdout + drift.stderr
    causes = {c: [i["action"] for i in items] for c, items in json.loads(drift.stdout)["causes"].items() if items}
    assert causes["upstream"][0] == "app/sync_referrers/1.0"  # a new signature upstream is upstream drift
    assert run_cli("apply", "-f", str(yaml), store=store).returncode == 0
    assert held(store)[0] == {"1.0", s.sig_tag}


def test_artifact_types_and_off(registry: RunningRegistry, repo_name: str, tmp_path: Path,
                                run_cli: RunCli) -> None:
    s = Signed("syncref-types")
    s.push(registry, repo_name)
    only = write_yaml(tmp_path / "only.yaml", registry.url, repo_name, f"{{artifact_types: [{sc.SPDX}]}}")
    assert run_cli("apply", "-f", str(only), store=tmp_path / "only").returncode == 0
    tags, manifests = held(tmp_path / "only")
    assert tags == {"1.0"} and s.sbom.digest in manifests
    assert not {s.sig.digest, s.sbom_sig.digest} & manifests  # the SBOM's signature is of another type

    off = write_yaml(tmp_path / "off.yaml", registry.url, repo_name, "false")
    mark = registry.mark()
    assert run_cli("apply", "-f", str(off), store=tmp_path / "off").returncode == 0
    assert not [a for a in registry.requests_since(mark) if "/referrers/" in a.path]
    tags, manifests = held(tmp_path / "off")
    assert tags == {"1.0"} and manifests == {s.image.digest}


def test_from_reconciler_serve_through_the_referrers_api(tmp_path: Path, run_cli: RunCli) -> None:
    s = Signed("syncref-api")
    upstream_store = SQLiteStore(tmp_path / "upstream")
    try:
        v = commit_tags(upstream_store, "src", {"1.0": s.image, s.sig_tag: s.sig}, extra=(s.sbom, s.sbom_sig))
        upstream_store.publish("src", name="team/src", version=v, protected=False)
    finally:
        upstream_store.close()
    with run_server(tmp_path / "upstream", tmp_path / "upstream.log") as srv:
        yaml = write_yaml(tmp_path / "repos.yaml", srv.url, "team/src")
        store = tmp_path / "store"
        applied = run_cli("apply", "-f", str(yaml), store=store)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "3 referrers of 1.0: signature, SBOM" in applied.stdout
        tags, manifests = held(store)
        assert tags == {"1.0", s.sig_tag}
        assert {s.sig.digest, s.sbom.digest, s.sbom_sig.digest} <= manifests
        again = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
        assert again.returncode == 0, again.stdout
        log = srv.log()
    # the no-change plan asked the referrers API once per digest it knows: the image, the
    # SBOM, the two signatures
    assert log.count("/referrers/") == 2 * 4, log


def test_across_an_air_gap_a_bundle_answers_for_its_referrers(registry: RunningRegistry, repo_name: str,
                                                              tmp_path: Path, run_cli: RunCli) -> None:
    s = Signed("syncref-gap")
    s.push(registry, repo_name)
    near = write_yaml(tmp_path / "near.yaml", registry.url, repo_name)
    assert run_cli("apply", "-f", str(near), store=tmp_path / "near").returncode == 0
    bundle = tmp_path / "bundle.tar"
    assert run_cli("export", "--all", "-o", str(bundle), store=tmp_path / "near").returncode == 0
    far = write_yaml(tmp_path / "far.yaml", f"bundle:{bundle}", "app")
    applied = run_cli("apply", "-f", str(far), store=tmp_path / "far")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "3 referrers of 1.0: signature, SBOM" in applied.stdout
    assert held(tmp_path / "far") == held(tmp_path / "near")
    again = run_cli("plan", "-f", str(far), "--detailed-exitcode", store=tmp_path / "far")
    assert again.returncode == 0, again.stdout


def test_a_referrer_that_cannot_be_fetched_is_a_warning_not_a_failure(registry: RunningRegistry, repo_name: str,
                                                                      tmp_path: Path, run_cli: RunCli) -> None:
    s = Signed("syncref-gone")
    s.push(registry, repo_name)
    delete_manifest(registry.url, repo_name, str(s.sbom.digest))  # the tag-schema index still lists it
    yaml = write_yaml(tmp_path / "repos.yaml", registry.url, repo_name)
    applied = run_cli("apply", "-f", str(yaml), store=tmp_path / "store")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"referrer {s.sbom.digest} of {s.image.digest} is not synced" in applied.stdout + applied.stderr
    tags, manifests = held(tmp_path / "store")
    assert tags == {"1.0", s.sig_tag} and s.sig.digest in manifests
    # nor what refers to it: a referrer never points at a subject the repository lacks
    assert s.sbom.digest not in manifests and s.sbom_sig.digest not in manifests
