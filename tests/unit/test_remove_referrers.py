"""Removal follows the referrer graph: removing an image removes the referrers whose
``subject`` it was (and theirs), and cosign's classic tags of it with the signatures they
name, unless a remaining tag or index still needs one; ``store check`` reports a referrer
left pointing at a subject its version lacks. Both backends, the cascade itself, the
one-off ``remove`` and repos.yaml's ``remove``/``mirror`` through the same plan."""

from __future__ import annotations

from pathlib import Path

from reconciler.apply.content_commands import remove_command
from reconciler.model.content import Origin, TagEntry
from reconciler.ops.cascade import RefGraph, cascade_remove
from reconciler.ops.state import RepoState
from reconciler.store.protocol import Store
from reconciler.store.sqlite import SQLiteStore
from tests.support import supplychain as sc
from tests.support.cli import RunCli
from tests.support.imagegen import Image, ManifestImage, build_image, build_multiarch
from tests.support.serving import commit_tags, content_of


def _signed() -> dict[str, ManifestImage]:
    key = sc.new_key()
    image = build_image("rm-app", oci=True)
    other = build_image("rm-other", oci=True)
    sbom = sc.oci_referrer(image, sc.SPDX, b'{"spdxVersion":"SPDX-2.3"}')
    sig_of_sbom = sc.cosign_referrer_signature(sbom, key)
    classic = sc.cosign_signature(image, key)
    return {"image": image, "other": other, "sbom": sbom, "sig_of_sbom": sig_of_sbom, "classic": classic}


def _state(tags: dict[str, Image], extra: tuple[Image, ...]) -> tuple[RepoState, RefGraph]:
    images = (*tags.values(), *extra)
    graph = RefGraph.from_manifests(m for img in images for m in img.all_manifests())
    content = content_of(*images)
    return RepoState(content, {t: TagEntry(i.digest, Origin.SYNC) for t, i in tags.items()}), graph


def test_the_cascade_takes_referrers_classic_tags_and_theirs() -> None:
    s = _signed()
    sig_tag = sc.cosign_tag(s["image"].digest)
    state, graph = _state({"1.0": s["image"], "2.0": s["other"], sig_tag: s["classic"]},
                          (s["sbom"], s["sig_of_sbom"]))
    removal = cascade_remove(state, graph, manifests=[s["image"].digest])
    assert removal.manifests == {s["image"].digest, s["sbom"].digest, s["sig_of_sbom"].digest, s["classic"].digest}
    assert removal.tags == {"1.0", sig_tag}
    assert set(removal.state.tags) == {"2.0"}
    # the other image's blobs and manifest stay; nothing is left that refers to a removed subject
    assert s["other"].digest in removal.state.content.manifests
    assert all(graph.subject(d) in removal.state.content for d in removal.state.content.manifests
               if graph.subject(d) is not None)
    # a mirror's removal of the tag with its target does the same
    mirrored = cascade_remove(state, graph, tags=["1.0"], with_targets=True)
    assert mirrored.manifests == removal.manifests and mirrored.tags == removal.tags
    # removing only the tag leaves the image and what refers to it
    assert cascade_remove(state, graph, tags=["1.0"]).manifests == frozenset()


def test_a_referrer_another_tag_or_index_needs_stays() -> None:
    s = _signed()
    sig_tag = sc.cosign_tag(s["image"].digest)
    # the SBOM is also tagged, the classic signature also named by another tag
    state, graph = _state({"1.0": s["image"], sig_tag: s["classic"], "sbom": s["sbom"], "keep-sig": s["classic"]},
                          (s["sig_of_sbom"],))
    removal = cascade_remove(state, graph, manifests=[s["image"].digest])
    assert removal.manifests == {s["image"].digest}
    assert removal.tags == {"1.0", sig_tag}  # the classic tag names a digest that is gone: it goes
    assert {"sbom", "keep-sig"} <= set(removal.state.tags)
    # a referrer an index lists is kept by that index
    multi = build_multiarch("rm-multi", oci=True)
    child = multi.children[0]
    att = sc.oci_referrer(child, sc.SPDX, b"{}")
    index_state, index_graph = _state({"all": multi, "one": child}, (att,))
    kept = cascade_remove(index_state, index_graph, tags=["one"], with_targets=True)
    assert kept.manifests == frozenset() and att.digest in kept.state.content.manifests


def test_store_check_reports_a_referrer_whose_subject_is_gone(store: Store) -> None:
    s = _signed()
    commit_tags(store, "app", {"1.0": s["image"]}, extra=(s["sbom"], s["other"]))
    assert store.check(verify_content=False).ok
    assert store.manifest_subjects([s["sbom"].digest, s["image"].digest]) == {
        s["sbom"].digest: (s["image"].digest, sc.SPDX)}
    # by hand: a version holding the SBOM without its image (as no command leaves it)
    base = store.repository_get("app").latest_version
    store.version_commit("app", base=base, content=content_of(s["other"], s["sbom"]),
                         tags={"2.0": TagEntry(s["other"].digest, Origin.MANUAL)}, operation="test")
    report = store.check(verify_content=False)
    dangling = [p for p in report.problems if "subject" in p.message]
    assert [(p.kind, p.subject) for p in dangling] == [("dangling", "app@2")]
    assert str(s["sbom"].digest) in dangling[0].message and str(s["image"].digest) in dangling[0].message


def test_the_remove_command_follows_the_graph(store: Store) -> None:
    s = _signed()
    sig_tag = sc.cosign_tag(s["image"].digest)
    commit_tags(store, "app", {"1.0": s["image"], "2.0": s["other"], sig_tag: s["classic"]},
                extra=(s["sbom"], s["sig_of_sbom"]))
    result = remove_command(store, "app", "manifest", [str(s["image"].digest)])
    v = store.version_get("app")
    assert set(v.tags) == {"2.0"}
    assert v.content.manifests == {s["other"].digest}
    assert set(result.details["removed"]["manifests"]) == {  # type: ignore[index]
        str(d) for d in (s["image"].digest, s["sbom"].digest, s["sig_of_sbom"].digest, s["classic"].digest)}
    assert store.check(verify_content=False).ok


def test_repos_yaml_remove_shows_and_removes_the_referrers(tmp_path: Path, run_cli: RunCli) -> None:
    s = _signed()
    sig_tag = sc.cosign_tag(s["image"].digest)
    location = tmp_path / "store"
    store = SQLiteStore(location)
    commit_tags(store, "app", {"1.0": s["image"], "2.0": s["other"], sig_tag: s["classic"]},
                extra=(s["sbom"], s["sig_of_sbom"]))
    store.close()
    path = tmp_path / "repos.yaml"
    path.write_text(f'version: 1\nrepositories:\n  app:\n    remove:\n      manifests: ["{s["image"].digest}"]\n')
    plan = run_cli("plan", "-f", str(path), store=location)
    assert "cascade: 4 manifests" in plan.stdout, plan.stdout
    run_cli("apply", "-f", str(path), store=location, check=True)
    check = run_cli("store", "check", store=location)
    assert check.returncode == 0, check.stdout + check.stderr
    reopened = SQLiteStore(location)
    try:
        assert set(reopened.version_get("app").tags) == {"2.0"}
    finally:
        reopened.close()
