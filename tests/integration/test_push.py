"""Push targets end to end (issue 23): the real CLI syncs from one distribution registry
and pushes into another (plain, htpasswd Basic, Bearer tokens), skopeo reads the target
back, the target's access log counts what a no-change run costs, and a fault proxy
between us and the target breaks uploads on their way."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.model import Digest
from tests.support.cli import RunCli
from tests.support.faultproxy import FaultProxy
from tests.support.imagegen import Image, build_image, build_multiarch
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry, require_binary, start_registry

IMAGES: dict[str, Image] = {n: build_image(f"push-e2e-{n}") for n in ("a", "b", "c")}
IMAGES["multi"] = build_multiarch("push-e2e-multi")


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A fresh, empty target registry (its access log is this test's alone)."""
    reg = start_registry(tmp_path / "target")
    try:
        yield reg
    finally:
        reg.stop()


def write_yaml(path: Path, source: RunningRegistry, upstream: str, target_url: str, *, push: str = "",
               extra: str = "") -> Path:
    path.write_text(f"""version: 1
registries:
  up:
    url: {source.url}
    tls_verify: false
  tgt:
    url: {target_url}
    tls_verify: false
    retries: 3
{extra}repositories:
  app:
    feed: up
    upstream_name: {upstream}
    mirror: true
    push:
      - {{registry: tgt, name: team/app{push}}}
""")
    return path


def skopeo_raw(url: str, ref: str, *, creds: tuple[str, str] | None = None) -> bytes:
    skopeo = require_binary("skopeo", "skopeo")
    args = [skopeo, "inspect", "--raw", "--tls-verify=false"]
    if creds:
        args += ["--creds", f"{creds[0]}:{creds[1]}"]
    return subprocess.run(args + [f"docker://{url.split('://', 1)[1]}/{ref}"], check=True,
                          capture_output=True, timeout=60).stdout


def skopeo_copy(url: str, ref: str, dest: Path, *, creds: tuple[str, str] | None = None) -> None:
    """Copy every platform out of the target: fails unless every blob is there."""
    skopeo = require_binary("skopeo", "skopeo")
    args = [skopeo, "copy", "--all", "--src-tls-verify=false"]
    if creds:
        args += ["--src-creds", f"{creds[0]}:{creds[1]}"]
    subprocess.run(args + [f"docker://{url.split('://', 1)[1]}/{ref}", f"oci:{dest}:x"], check=True,
                   capture_output=True, timeout=120)


def blobs_of(image: Image) -> set[str]:
    """Every blob an image (or an index's images) needs, config included."""
    return set(image.all_blobs())


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if re.match(r"\s+[+~-] (push|move|delete) ", line)]


def test_apply_pushes_everything_and_a_second_run_is_heads_only(
        registry: RunningRegistry, target: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    push_image(registry.url, repo_name, IMAGES["a"], ["1.0", "1.1"])
    push_image(registry.url, repo_name, IMAGES["multi"], ["2.0", "latest"])
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name, target.url)
    store = tmp_path / "store"

    plan = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    lines = push_lines(plan.stdout)
    assert len(lines) == 4, plan.stdout
    multi_blobs = len(blobs_of(IMAGES["multi"]))
    assert any(re.match(rf"\+ push 2\.0 -> tgt/team/app   {re.escape(IMAGES['multi'].digest.short())} "
                        rf"\({multi_blobs} blobs, [\d.]+ (B|KiB|MiB)\)$", line) for line in lines), lines

    applied = run_cli("apply", "-f", str(yaml), store=store)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    # not a terminal: plain lines, as for downloads
    assert re.search(r"^app -> tgt/team/app: uploaded \d+ blobs, [\d.]+ (B|KiB)$", applied.stderr, re.M), \
        applied.stderr
    for tag, image in (("1.0", IMAGES["a"]), ("1.1", IMAGES["a"]), ("2.0", IMAGES["multi"]),
                       ("latest", IMAGES["multi"])):
        assert sha(skopeo_raw(target.url, f"team/app:{tag}")) == str(image.digest)
    skopeo_copy(target.url, "team/app:latest", tmp_path / "out-multi")
    skopeo_copy(target.url, "team/app:1.0", tmp_path / "out-a")
    history = json.loads(run_cli("history", "--json", store=store, check=True).stdout)
    pushed = history[0]["details"]["pushes"]["tgt/team/app"]
    assert sorted(pushed["tags"]) == ["1.0", "1.1", "2.0", "latest"]
    assert pushed["blobs_uploaded"] == multi_blobs + len(blobs_of(IMAGES["a"])) - \
        len(blobs_of(IMAGES["a"]) & blobs_of(IMAGES["multi"]))

    mark = target.mark()
    again = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.rstrip().endswith("No changes.")
    seen = target.requests_since(mark)
    assert [(a.method, a.kind) for a in seen if a.kind != "ping"] == [("HEAD", "manifest")] * 4, seen
    assert len(seen) <= 5  # one HEAD per tag, and at most one /v2/ ping

    mark = target.mark()
    rerun = run_cli("apply", "-f", str(yaml), store=store)
    assert rerun.returncode == 0 and "No changes." in rerun.stdout, rerun.stdout + rerun.stderr
    assert {(a.method, a.kind) for a in target.requests_since(mark)} <= {("HEAD", "manifest"), ("GET", "ping")}


def test_moved_tags_follow_and_prune_deletes_only_tags_we_pushed(
        registry: RunningRegistry, target: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    push_image(registry.url, repo_name, IMAGES["a"], ["1.0", "1.1", "latest"])
    push_image(target.url, "team/app", IMAGES["c"], ["theirs"])  # not ours: prune never touches it
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name, target.url, push=", prune: true")
    store = tmp_path / "store"
    run_cli("apply", "-f", str(yaml), store=store, check=True)

    push_image(registry.url, repo_name, IMAGES["b"], ["latest"])  # latest moves upstream
    plan = run_cli("plan", "-f", str(yaml), store=store, check=True)
    assert any(line.startswith("~ move latest -> tgt/team/app   "
                               f"{IMAGES['a'].digest.short()} -> {IMAGES['b'].digest.short()}")
               for line in push_lines(plan.stdout)), plan.stdout
    run_cli("apply", "-f", str(yaml), store=store, check=True)
    assert sha(skopeo_raw(target.url, "team/app:latest")) == str(IMAGES["b"].digest)

    # 1.0 is no longer selected: it goes at the target, 1.1 (same manifest) and theirs stay
    write_yaml(yaml, registry, repo_name, target.url, push=", prune: true, tags: ['1.1', latest]")
    plan = run_cli("plan", "-f", str(yaml), store=store, check=True)
    assert push_lines(plan.stdout) == [
        f"- delete 1.0 at tgt/team/app   {IMAGES['a'].digest.short()}   pushed by us, no longer selected (prune)"]
    run_cli("apply", "-f", str(yaml), store=store, check=True)
    gone = subprocess.run([require_binary("skopeo", "skopeo"), "inspect", "--raw", "--tls-verify=false",
                           f"docker://{target.host}/team/app:1.0"], capture_output=True, timeout=60)
    assert gone.returncode != 0
    assert sha(skopeo_raw(target.url, "team/app:1.1")) == str(IMAGES["a"].digest)
    assert sha(skopeo_raw(target.url, "team/app:theirs")) == str(IMAGES["c"].digest)
    final = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert final.returncode == 0, final.stdout

    # someone moves a tag we pushed, at the target: drift says so; a saved plan puts it back
    push_image(target.url, "team/app", IMAGES["c"], ["1.1"])
    drift = json.loads(run_cli("drift", "-f", str(yaml), "--json", store=store).stdout)
    [item] = [i for items in drift["causes"].values() for i in items]
    assert item["cause"] == "manual" and "changed at the target" in item["why"], drift
    saved = tmp_path / "plan.json"
    run_cli("plan", "-f", str(yaml), "--out", str(saved), store=store, check=True)
    assert any(a["op"] == "push_tag" and a["tag"] == "1.1" and a["old_digest"] == str(IMAGES["c"].digest)
               for a in json.loads(saved.read_text())["actions"])
    run_cli("apply", str(saved), store=store, check=True)
    assert sha(skopeo_raw(target.url, "team/app:1.1")) == str(IMAGES["a"].digest)


@pytest.mark.parametrize("kind", ["basic_registry", "token_registry"])
def test_push_with_credentials(kind: str, request: pytest.FixtureRequest, registry: RunningRegistry,
                               repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    secured: RunningRegistry = request.getfixturevalue(kind)
    assert secured.credentials is not None
    push_image(registry.url, repo_name, IMAGES["multi"], ["2.0"])
    yaml = tmp_path / "repos.yaml"
    write_yaml(yaml, registry, repo_name, secured.url)
    text = yaml.read_text().replace("    retries: 3\n", "    retries: 3\n    username_env: T_USER\n"
                                                         "    password_env: T_PASS\n")
    yaml.write_text(text.replace("name: team/app", f"name: {repo_name}-pushed"))
    env = {"T_USER": secured.credentials[0], "T_PASS": secured.credentials[1]}
    applied = run_cli("apply", "-f", str(yaml), store=tmp_path / "store", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    raw = skopeo_raw(secured.url, f"{repo_name}-pushed:2.0", creds=secured.credentials)
    assert sha(raw) == str(IMAGES["multi"].digest)
    skopeo_copy(secured.url, f"{repo_name}-pushed:2.0", tmp_path / "out", creds=secured.credentials)
    if secured.token_server is not None:
        scopes = {s for r in secured.token_server.requests for s in r.scopes}
        assert f"repository:{repo_name}-pushed:push,pull" in scopes, scopes


def test_faults_between_us_and_the_target_are_survived(
        registry: RunningRegistry, target: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    # a layer that does not compress: ~300 KiB, pushed in 64 KiB PATCH chunks
    noise = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(10_000))
    big = build_image("push-e2e-big", shared=(noise,))
    push_image(registry.url, repo_name, big, ["big"])
    push_image(registry.url, repo_name, IMAGES["a"], ["small"])
    proxy = FaultProxy(target.url, keep_host=True).start()
    try:
        yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name, proxy.url)
        proxy.add(r"^PUT /v2/team/app/blobs/uploads/", "status", status=503, times=1)
        proxy.add(r"^POST /v2/team/app/blobs/uploads/", "reset", times=1)
        proxy.add(r"^PATCH /v2/team/app/blobs/uploads/", "truncate", after=1000, times=1)
        proxy.add(r"^PUT /v2/team/app/manifests/", "status", status=502, times=1)
        env = {"RECONCILER_PUSH_CHUNK": "65536"}  # the big layer goes in PATCH chunks
        applied = run_cli("apply", "-f", str(yaml), store=tmp_path / "store", env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert all(f.hits == 1 for f in proxy.faults), [(f.pattern, f.hits) for f in proxy.faults]
        assert any(e.startswith("PATCH ") for e in proxy.log)
        # distribution cannot say how much of the cut chunk it kept: the blob went again
        assert "cannot say how much it received" in applied.stderr and "pushing again" in applied.stderr
        assert sha(skopeo_raw(target.url, "team/app:big")) == str(big.digest)
        skopeo_copy(target.url, "team/app:big", tmp_path / "out-big")
        skopeo_copy(target.url, "team/app:small", tmp_path / "out-small")
    finally:
        proxy.stop()


def test_a_push_that_keeps_failing_moves_no_tag(
        registry: RunningRegistry, target: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    push_image(registry.url, repo_name, IMAGES["a"], ["1.0"])
    push_image(registry.url, repo_name, IMAGES["multi"], ["2.0"])
    proxy = FaultProxy(target.url, keep_host=True).start()
    try:
        yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name, proxy.url)
        # one child manifest of the index can never be put: blobs go up, no tag may move
        child = IMAGES["multi"].children[0].digest
        proxy.add(rf"^PUT /v2/team/app/manifests/{child}", "status", status=500, times=None)
        applied = run_cli("apply", "-f", str(yaml), store=tmp_path / "store")
        assert applied.returncode == 1, applied.stdout + applied.stderr
        tags = [e for e in proxy.log if re.match(r"PUT /v2/team/app/manifests/(?!sha256:)", e)]
        assert tags == [], tags
        history = json.loads(run_cli("history", "--json", store=tmp_path / "store", check=True).stdout)
        assert history[0]["result"] == "partial"
        assert "error" in history[0]["details"]["pushes"]["tgt/team/app"]
        proxy.clear()
        fixed = run_cli("apply", "-f", str(yaml), store=tmp_path / "store")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert sha(skopeo_raw(target.url, "team/app:2.0")) == str(IMAGES["multi"].digest)
    finally:
        proxy.stop()


def test_one_off_push_mounts_blobs_we_pushed_to_another_repository(
        registry: RunningRegistry, target: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    push_image(registry.url, repo_name, IMAGES["multi"], ["2.0", "latest"])
    yaml = tmp_path / "repos.yaml"
    yaml.write_text(f"version: 1\nrepositories:\n  app:\n    feed: {registry.url}\n    upstream_name: {repo_name}\n")
    store = tmp_path / "store"
    run_cli("apply", "-f", str(yaml), store=store, check=True)

    first = run_cli("push", "app", "--to", f"{target.url}/team/one", "--no-tls-verify", "--json", store=store)
    assert first.returncode == 0, first.stdout + first.stderr
    doc = json.loads(first.stdout)
    assert doc["ok"] and {a["tag"] for a in doc["plan"]} == {"2.0", "latest"}
    assert doc["result"]["pushes"][f"127.0.0.1:{target.port}/team/one"]["blobs_mounted"] == 0

    mark = target.mark()
    second = run_cli("push", "app", "--to", f"{target.url}/team/two", "--tags", "2.*", store=store)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"+ push 2.0 -> 127.0.0.1:{target.port}/team/two" in second.stdout
    seen = target.requests_since(mark)
    mounts = [a for a in seen if a.method == "POST" and "mount=" in a.path]
    blob_count = len(blobs_of(IMAGES["multi"]))
    assert len(mounts) == blob_count and all(a.status == 201 for a in mounts), seen
    assert not [a for a in seen if a.method in ("PUT", "PATCH") and "/blobs/uploads/" in a.path], seen
    assert sha(skopeo_raw(target.url, "team/two:2.0")) == str(IMAGES["multi"].digest)
    skopeo_copy(target.url, "team/two:2.0", tmp_path / "out")

    mark = target.mark()
    again = run_cli("push", "app", "--to", f"{target.url}/team/two", "--tags", "2.*", store=store)
    assert again.returncode == 0 and "No changes." in again.stdout, again.stdout + again.stderr
    assert {(a.method, a.kind) for a in target.requests_since(mark)} <= {("HEAD", "manifest"), ("GET", "ping")}
    # one way in: no journal entry (the apply's is the only one), as for every one-off command
    assert [e["command"] for e in json.loads(run_cli("history", "--json", store=store, check=True).stdout)] == [
        f"apply -f {yaml}"]
    missing = run_cli("push", "nope", "--to", f"{target.url}/team/x", store=store)
    assert missing.returncode == 1 and "no repository 'nope'" in missing.stderr


def test_sigkill_while_pushing_then_rerun_converges(
        registry: RunningRegistry, target: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    """Killed right after a push record is written (the tag not moved yet), at each one:
    the store stays sound, no tag points at missing content, and the next apply finishes
    the push (the record was written ahead, so prune would know the tag is ours)."""
    from tests.support.crashpoints import LOG_ENV, MODULE

    push_image(registry.url, repo_name, IMAGES["a"], ["1.0"])
    push_image(registry.url, repo_name, IMAGES["multi"], ["2.0"])
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name, target.url, push=", prune: true")
    log = tmp_path / "writes.log"
    counted = run_cli("apply", "-f", str(yaml), store=tmp_path / "counted", module=MODULE, env={LOG_ENV: str(log)})
    assert counted.returncode == 0, counted.stderr
    points = [line.split()[0] for line in log.read_text().splitlines() if line.split()[1] == "push_record"]
    assert len(points) == 2  # one per tag, each before its tag moves
    for n in points:
        here = start_registry(tmp_path / f"target-{n}")
        try:
            store = tmp_path / f"store-{n}"
            yaml_n = write_yaml(tmp_path / f"repos-{n}.yaml", registry, repo_name, here.url, push=", prune: true")
            killed = run_cli("apply", "-f", str(yaml_n), store=store, module=MODULE,
                             env={"RECONCILER_APPLY_KILL_AT": f"write:{n}"})
            assert killed.returncode == -9, killed.stdout + killed.stderr
            for tag, image in (("1.0", IMAGES["a"]), ("2.0", IMAGES["multi"])):
                got = subprocess.run([require_binary("skopeo", "skopeo"), "inspect", "--raw", "--tls-verify=false",
                                      f"docker://{here.host}/team/app:{tag}"], capture_output=True, timeout=60)
                if got.returncode == 0:  # a tag that is there is complete
                    assert sha(got.stdout) == str(image.digest)
                    skopeo_copy(here.url, f"team/app:{tag}", tmp_path / f"out-{n}-{tag}")
            assert run_cli("store", "check", store=store).returncode == 0
            rerun = run_cli("apply", "-f", str(yaml_n), store=store)
            assert rerun.returncode == 0, rerun.stdout + rerun.stderr
            assert sha(skopeo_raw(here.url, "team/app:2.0")) == str(IMAGES["multi"].digest)
            assert sha(skopeo_raw(here.url, "team/app:1.0")) == str(IMAGES["a"].digest)
            final = run_cli("plan", "-f", str(yaml_n), "--detailed-exitcode", store=store)
            assert final.returncode == 0, final.stdout
        finally:
            here.stop()


def test_signatures_and_sboms_go_along(registry: RunningRegistry, target: RunningRegistry, repo_name: str,
                                       tmp_path: Path, run_cli: RunCli) -> None:
    """A signed image with an SBOM (OCI 1.1 referrers, and a signature of the SBOM) and a
    cosign signature tag, synced with its referrers, then pushed with ``tags: ['1.*']``:
    the cosign tag goes with the image it signs, the referrers go by digest, and the
    distribution registry (no referrers API) gets the tag schema's indexes. A signature
    made later upstream is pushed alone on the next apply."""
    from tests.support import supplychain as sc

    image = build_image("push-e2e-signed", oci=True)
    sig, sig_tag = sc.cosign_signature(image), sc.cosign_tag(image.digest)
    sbom = sc.oci_referrer(image, sc.SPDX, b'{"spdxVersion":"SPDX-2.3","name":"push-e2e"}')
    sbom_sig = sc.oci_referrer(sbom, sc.SIGSTORE_BUNDLE, b'{"bundle":"push-e2e"}')
    push_image(registry.url, repo_name, image, ["1.0"])
    push_image(registry.url, repo_name, sig, [sig_tag])
    for referrer in (sbom, sbom_sig):
        push_image(registry.url, repo_name, referrer)
    push_image(registry.url, repo_name, sc.tag_schema_index([sbom]), [sc.tag_schema_tag(image.digest)])
    push_image(registry.url, repo_name, sc.tag_schema_index([sbom_sig]), [sc.tag_schema_tag(sbom.digest)])
    yaml = tmp_path / "repos.yaml"
    yaml.write_text(f"""version: 1
registries:
  tgt: {{url: {target.url}, tls_verify: false}}
repositories:
  app:
    feed: {registry.url}
    upstream_name: {repo_name}
    tags: {{include: ["1.*"]}}
    push:
      - {{registry: tgt, name: team/app, tags: ["1.*"]}}
""")
    store = tmp_path / "store"
    plan = run_cli("plan", "-f", str(yaml), store=store, check=True)
    assert "+ push 2 referrers of 1.0 -> tgt/team/app: signature, SBOM" in plan.stdout, plan.stdout
    assert f"+ push {sig_tag} -> tgt/team/app" in plan.stdout, plan.stdout
    applied = run_cli("apply", "-f", str(yaml), store=store)
    assert applied.returncode == 0, applied.stdout + applied.stderr

    assert sha(skopeo_raw(target.url, "team/app:1.0")) == str(image.digest)
    assert sha(skopeo_raw(target.url, f"team/app:{sig_tag}")) == str(sig.digest)
    for referrer in (sbom, sbom_sig):
        assert sha(skopeo_raw(target.url, f"team/app@{referrer.digest}")) == str(referrer.digest)
    skopeo_copy(target.url, f"team/app@{sbom.digest}", tmp_path / "out-sbom")

    def listed(subject: Digest) -> list[str]:
        index = json.loads(skopeo_raw(target.url, f"team/app:{sc.tag_schema_tag(subject)}"))
        return [e["digest"] for e in index["manifests"]]

    assert listed(image.digest) == [str(sbom.digest)]
    assert listed(sbom.digest) == [str(sbom_sig.digest)]
    pushed = json.loads(run_cli("history", "--json", store=store, check=True).stdout)[0]["details"]["pushes"]
    assert pushed["tgt/team/app"]["referrers_pushed"] == 2
    assert pushed["tgt/team/app"]["referrers_listed_by"] == "tag schema"

    mark = target.mark()
    again = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert again.returncode == 0 and again.stdout.rstrip().endswith("No changes."), again.stdout + again.stderr
    # a HEAD per tag (1.0 and its signature's) and per referrer
    assert [(a.method, a.kind) for a in target.requests_since(mark) if a.kind != "ping"] == [("HEAD", "manifest")] * 4

    # signed again later (an attestation, OCI 1.1): only it goes, the index lists both
    attestation = sc.oci_referrer(image, sc.IN_TOTO, b'{"predicateType":"push-e2e"}')
    push_image(registry.url, repo_name, attestation)
    push_image(registry.url, repo_name, sc.tag_schema_index([sbom, attestation]), [sc.tag_schema_tag(image.digest)])
    plan = run_cli("plan", "-f", str(yaml), store=store, check=True)
    lines = push_lines(plan.stdout)
    assert lines == [f"+ push 1 referrer of 1.0 -> tgt/team/app: attestation   {image.digest.short()}   "
                     "tgt/team/app lacks them"], plan.stdout
    saved = tmp_path / "plan.json"  # reviewed, then applied as saved
    run_cli("plan", "-f", str(yaml), "--out", str(saved), store=store, check=True)
    assert [a["op"] for a in json.loads(saved.read_text())["actions"]] == ["sync_referrers", "push_referrers"]
    mark = target.mark()
    run_cli("apply", str(saved), store=store, check=True)
    assert not [a for a in target.requests_since(mark) if a.method == "PUT" and "/manifests/1.0" in a.path]
    assert listed(image.digest) == [str(sbom.digest), str(attestation.digest)]
