"""Saved plans are tamper-evident: ``apply PLAN`` refuses a plan edited after it was
written (its digest), and with ``RECONCILER_PLAN_KEY`` one not signed with that key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import PlanTampered
from reconciler.plan import seal
from tests.conftest import REPO_ROOT
from tests.support.cli import RunCli

DEMO = REPO_ROOT / "examples" / "demo.yaml"


def rename_a_tag(path: Path, *, rehash: bool = False) -> None:
    """What a hand edit of a reviewed plan looks like: an uploaded tag renamed."""
    doc = json.loads(path.read_text())
    action = next(a for a in doc["actions"] if a.get("tag") == "latest")
    action["tag"] = "prod"
    if rehash:  # someone who knows the format recomputes the digest too
        body = {k: v for k, v in doc.items() if k not in ("digest", "hmac")}
        doc["digest"] = seal.body_digest(body)
    path.write_text(json.dumps(doc, indent=2))


def tags(run_cli: RunCli, store: Path, repo: str) -> set[str]:
    return set(json.loads(run_cli("repo", "show", repo, "--json", store=store, check=True).stdout)["tags"])


def test_an_edited_plan_is_refused_and_nothing_is_applied(tmp_path: Path, run_cli: RunCli) -> None:
    store, saved = tmp_path / "store", tmp_path / "plan.json"
    assert run_cli("plan", "-f", str(DEMO), "--out", str(saved), store=store).returncode == 0
    assert json.loads(saved.read_text())["digest"].startswith("sha256:")
    rename_a_tag(saved)
    refused = run_cli("apply", str(saved), store=store)
    assert refused.returncode == 1
    assert f"error: {saved}: the plan was changed after it was written" in refused.stderr
    assert "hint: make the plan again" in refused.stderr
    assert json.loads(run_cli("repo", "list", "--json", store=store, check=True).stdout) == []


def test_with_a_key_only_plans_signed_with_it_are_applied(tmp_path: Path, run_cli: RunCli) -> None:
    store = tmp_path / "store"
    ci = {"RECONCILER_PLAN_KEY": "s3cret"}
    signed, unsigned, forged = tmp_path / "signed.json", tmp_path / "unsigned.json", tmp_path / "forged.json"
    assert run_cli("plan", "-f", str(DEMO), "--out", str(signed), store=store, env=ci).returncode == 0
    assert json.loads(signed.read_text())["hmac"].startswith("hmac-sha256:")
    assert "s3cret" not in signed.read_text()
    assert run_cli("plan", "-f", str(DEMO), "--out", str(unsigned), store=store).returncode == 0
    forged.write_text(signed.read_text())
    rename_a_tag(forged, rehash=True)

    no_key = run_cli("apply", str(unsigned), store=store, env=ci)
    assert no_key.returncode == 1 and "RECONCILER_PLAN_KEY is set, but the plan is not signed" in no_key.stderr
    rehashed = run_cli("apply", str(forged), store=store, env=ci)
    assert rehashed.returncode == 1 and "HMAC does not match RECONCILER_PLAN_KEY" in rehashed.stderr
    other_key = run_cli("apply", str(signed), store=store, env={"RECONCILER_PLAN_KEY": "other"})
    assert other_key.returncode == 1 and "HMAC does not match" in other_key.stderr
    assert json.loads(run_cli("repo", "list", "--json", store=store, check=True).stdout) == []

    applied = run_cli("apply", str(signed), store=store, env=ci)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    # the reviewed plan is shown first, without the refresh line of a refresh that is not happening now
    assert applied.stdout.startswith(f"Applying the saved plan {signed} (made ") and "Refreshed" not in applied.stdout
    assert tags(run_cli, store, "schema2") == {"latest", "v1"}


@pytest.mark.parametrize("edit", ["drop-digest", "change-body", "bad-hmac"])
def test_unseal_names_what_does_not_match(edit: str) -> None:
    body = {"format_version": 2, "actions": [{"id": "r/pin_tag/v1", "tag": "v1"}]}
    doc = seal.seal(body, b"k")
    assert seal.unseal(doc, b"k", where="p.json") == body
    if edit == "drop-digest":
        del doc["digest"]
        match = "has no digest"
    elif edit == "change-body":
        doc["actions"][0]["tag"] = "v2"
        match = "changed after it was written"
    else:
        doc["hmac"] = seal.signature(body, b"other")
        match = "HMAC does not match"
    with pytest.raises(PlanTampered, match=match):
        seal.unseal(doc, b"k", where="p.json")
