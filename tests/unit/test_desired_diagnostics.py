"""Golden diagnostics: each bad file in tests/unit/data/desired/ gives exactly these
problems, at exactly these LINE:COL positions, with these messages. A user reads them to
find and fix the mistake, so a moved column or a vaguer message is a regression."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.desired import check_text, load_desired
from reconciler.desired.diagnostics import Diagnostic
from reconciler.desired.yamlpos import read_yaml
from reconciler.errors import ConfigError
from tests.support.narrow import narrow_all

DATA = Path(__file__).parent / "data" / "desired"
FILTER_HINT = "tag pins go under 'pins:', e.g. pins: {stable: REPO:TAG}"
SECRET = "keep credentials out of the file: name environment variables in username_env/password_env, or use auth_file"
TAG_RULE = "a tag starts with a letter, digit or '_' and has at most 128 characters from [A-Za-z0-9._-]"

GOLDEN: dict[str, list[str]] = {
    "wrong_types": [
        '4:14: repositories.web.publish: expected a string, got a number (42): quote it, e.g. "42"',
        "5:16: repositories.web.protected: expected true or false, got a string ('yes')",
        "6:14: repositories.web.uploads: expected a list, got a mapping",
    ],
    "unknown_keys": [
        "3:44: registries.hub.tls_verfy: unknown key 'tls_verfy': did you mean 'tls_verify'? allowed keys: "
        "auth_file, ca_file, client_cert, client_key, max_concurrency, password_env, retries, timeout, tls_verify, url, username_env",
        "8:5: repositories.web.mirorr: unknown key 'mirorr': did you mean 'mirror'? allowed keys: allow_empty, copy, "
        "enable_v1, feed, mirror, pins, platforms, protected, prune, publish, push, referrers, remove, retain_versions, tags, "
        "uploads, "
        "upstream_name, verify",
        "9:30: repositories.web.tags.stable: unknown key 'stable' in the sync tag filter (allowed: exclude, include, "
        f"latest, prereleases, semver, semver_suffix, sort): {FILTER_HINT}",
    ],
    "duplicate_keys": [
        "6:5: repositories.web.publish: duplicate key 'publish' (first defined at line 4); "
        "YAML would silently keep only the last one",
        "7:3: repositories.web: duplicate key 'web' (first defined at line 3); YAML would silently keep only the last one",
    ],
    "bad_regex": [
        "9:17: repositories.web.tags.include[0]: invalid regex 're:1.(36': missing ), unterminated subpattern at position 2",
        "10:17: repositories.web.tags.exclude[0]: invalid glob '[abc': unbalanced brackets",
    ],
    "copy_cycle": [
        "5:16: repositories.a.copy[0].from: copy cycle: a -> b -> c -> a (each copies or pins a tag from the next), "
        "so no repository in it can be applied first; remove one of these copies",
    ],
    "unknown_feed": [
        "6:11: repositories.web.feed: unknown feed 'quay': not a registries entry (known: hub), not an http:// or https:// URL and not bundle:PATH",
        "10:16: repositories.app.copy[0].from: unknown repository 'wbe': known repositories are app, web",
    ],
    "tag_conflict": [
        "12:7: repositories.dst.pins.stable: tag 'stable' is declared twice with different targets: "
        "upload of a.tar (line 8) and pin to src:latest",
        "13:7: repositories.dst.pins.latest: tag 'latest' is declared twice with different targets: "
        "tag latest of src (line 10) and pin to sha256:a673fc08e7d673f76545b73b94ab1fdac2a4f531cedf4c84b2599c98bb5f07bd",
        "15:14: repositories.dst.remove.tags[0]: tag 'stable' is both removed and declared "
        "(pin to src:latest, line 12); keep one of them",
    ],
    "inline_secret": [
        f"4:10: registries.hub.url: credentials in the URL are not allowed (the value is not shown); {SECRET}",
        "6:19: registries.hub.password_env: password_env looks like a secret, not the name of an environment "
        "variable (the value is not shown): put the secret in an environment variable and write its name here",
        f"7:5: registries.hub.password: inline credential 'password' is not allowed: {SECRET}",
    ],
    "alias_bomb": [
        "6:47: (document): aliases expand to more than 100000 nodes (an alias bomb?); refused: "
        "write the values out or use fewer nested aliases",
    ],
    "missing_upload": [
        f"5:16: repositories.schema2.uploads[0].file: upload file 'images/nope.tar' not found "
        f"(looked for {DATA / 'images/nope.tar'}); paths are relative to the YAML file",
    ],
    "publish_dup": [
        "4:18: repositories.two.publish: publish name 'pulpdemo/synctest' is already used by repository 'one' "
        "(line 3); publish names must be unique",
        "5:20: repositories.three.publish: invalid publish name 'pulpdemo/Synctest' (use lowercase letters and "
        "digits, separated by '.', '_', '__' or '-', in '/'-joined components, e.g. 'pulpdemo/synctest')",
    ],
    "forbidden_tag": [
        "4:14: repositories.web.publish: YAML tag '!!python/object/apply:os.system' is not allowed: "
        "use plain strings, numbers, booleans, lists and mappings",
    ],
}


@pytest.mark.parametrize("name", sorted(GOLDEN), ids=sorted(GOLDEN))
def test_golden_diagnostics(name: str) -> None:
    path = DATA / f"{name}.yaml"
    with pytest.raises(ConfigError) as info:
        load_desired(path)
    rendered = [d.render() for d in narrow_all(Diagnostic, info.value.diagnostics)]
    assert rendered == [f"{path}:{line}" for line in GOLDEN[name]]
    # the error's own message lists them too, so plan/apply show every problem
    assert all(line in info.value.message for line in rendered)


def test_every_fixture_has_a_golden_list() -> None:
    assert {p.stem for p in DATA.glob("*.yaml")} == set(GOLDEN)


def check(text: str, tmp_path: Path) -> list[str]:
    return [f"{d.line}:{d.column}: {d.path}: {d.message}"
            for d in check_text(text.encode(), "r.yaml", tmp_path)]


@pytest.mark.parametrize("text,expected", [
    ("version: 1\nrepositories:\n  web: {tags: {include: [x]}}\n",
     ["3:9: repositories.web.tags: 'tags' only applies to a repository with a feed (it filters or mirrors the sync)"]),
    ("version: 1\nrepositories:\n  web: {upstream_name: library/busybox}\n",
     ["3:9: repositories.web.upstream_name: upstream_name needs a feed (set feed here or in defaults)"]),
    ("version: 1\nrepositories:\n  web:\n    copy: [{from: web, tags: all}]\n",
     ["4:19: repositories.web.copy[0].from: a repository cannot copy from itself"]),
    ("version: 1\nrepositories:\n  web:\n    pins: {stable: nocolon}\n",
     ["4:20: repositories.web.pins.stable: invalid pin 'nocolon': expected REPO:TAG or sha256:<hex>"]),
    ("version: 1\nrepositories:\n  web:\n    pins: {stable: 'sha256:abc'}\n",
     ["4:20: repositories.web.pins.stable: invalid sha256 digest sha256:'abc': expected 64 lowercase hex characters"]),
    ("version: 1\nrepositories:\n  web:\n    remove: {manifests: [sha256:12]}\n",
     ["4:26: repositories.web.remove.manifests[0]: invalid digest 'sha256:12': expected sha256: followed by "
      "64 lowercase hex characters"]),
    ("version: 1\nrepositories:\n  web:\n    copy: [{from: a, tags: al}]\n  a: {}\n",
     ["4:28: repositories.web.copy[0].tags: expected 'all' or a list of tags, got a string ('al')"]),
    ("version: 1\nrepositories:\n  web:\n    copy: [{from: a}]\n  a: {}\n",
     ["4:12: repositories.web.copy[0]: needs at least one of: indexes, manifests, tags"]),
    ("version: 1\nrepositories:\n  web:\n    uploads: [{tag: 1.10}]\n",
     ["4:15: repositories.web.uploads[0]: missing required key 'file'",
      '4:21: repositories.web.uploads[0].tag: expected a string, got a number (1.1): quote it, e.g. "1.10"']),
    ("version: 1\nrepositories:\n  web:\n    remove: {tags: [-x]}\n",
     [f"4:21: repositories.web.remove.tags[0]: invalid tag '-x' ({TAG_RULE})"]),
    ("version: 2\nrepositories:\n  a/b: {}\n",
     ["1:10: version: must be 1, got a number (2)",
      "3:3: repositories[\"a/b\"]: invalid id 'a/b': use letters, digits, '.', '_' and '-' (no '/' or ':'), "
      "starting with a letter or digit"]),
    ("repositories: {}\n", ["1:1: (document): missing required key 'version'"]),
    ("", ["1:1: (document): expected a mapping, got nothing (null)"]),
    ("version: 1\nrepositories: [a\n", ["3:1: (document): YAML syntax error: while parsing a flow sequence "
                                        "expected ',' or ']', but got '<stream end>'"]),
    ("version: 1\nrepositories: {a: &x [1, *x]}\n",
     ["2:19: (document): recursive alias: an anchor refers to itself; refused"]),
    ("version: 1\nregistries:\n  r: {url: 'ftp://x'}\nrepositories: {}\n",
     ["3:12: registries.r.url: invalid URL 'ftp://x': expected http:// or https:// followed by a host"]),
    ("version: 1\nregistries:\n  r: {url: 'https://x', max_concurrency: 0}\nrepositories: {}\n",
     ["3:42: registries.r.max_concurrency: must be at least 1, got 0"]),
    ("version: 1\nrepositories:\n  a: {remove: {manifests: ['sha256:" + "a" * 64 + "']},\n"
     "      copy: [{from: b, manifests: ['sha256:" + "a" * 64 + "']}]}\n  b: {}\n",
     ["3:28: repositories.a.remove.manifests[0]: sha256:" + "a" * 64 + " is both removed and declared (line 4); "
      "keep one of them"]),
], ids=["filter-without-feed", "upstream-without-feed", "self-copy", "pin-shape", "pin-digest", "remove-digest",
        "selection-typo", "copy-needs-selection", "unquoted-float-tag", "bad-tag", "version-and-id", "no-version",
        "empty-file", "syntax-error", "recursive-alias", "bad-url", "max-concurrency", "removed-and-copied"])
def test_inline_diagnostics(text: str, expected: list[str], tmp_path: Path) -> None:
    assert check(text, tmp_path) == expected


def test_merge_keys_work_and_own_keys_win(tmp_path: Path) -> None:
    text = ("version: 1\nx-common: &common {prune: true, protected: true}\n"
            "repositories:\n  a:\n    <<: *common\n    protected: false\n")
    # x-common is not a schema key: the merge itself is fine, the extra top-level key is not
    assert check(text, tmp_path) == ["2:1: x-common: unknown key 'x-common': allowed keys: defaults, registries, "
                                     "repositories, version"]
    data = read_yaml(text, "r.yaml").data
    assert data["repositories"]["a"] == {"prune": True, "protected": False}


def test_keys_keep_their_source_text() -> None:
    # `1.10:` must stay the tag "1.10", not the float 1.1
    assert read_yaml("pins: {1.10: a:b, 2024-01-01: a:c}\n", "f").data == {"pins": {"1.10": "a:b", "2024-01-01": "a:c"}}


_ANCHORS = """\
version: 1
defaults: &d {prune: false}
repositories:
  a: &repo
    <<: *d
    publish: x/a
  b:
    <<: [*repo, *d]
    publish: x/b
  c: {tags: {include: [&t "1.*", *t]}}
"""


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parent / "data" / "desired").glob("*.yaml"))
                         + ["anchors"])
def test_libyaml_and_pure_readers_agree(name: str) -> None:
    """The fast reader (libyaml) and the pure one give the same values, positions and
    diagnostics (the fast one hands every error case to the pure one)."""
    from reconciler.desired import yamlpos

    if name == "anchors":
        text = _ANCHORS
    else:
        text = (Path(__file__).parent / "data" / "desired" / name).read_text()
    assert yamlpos._FAST, "PyYAML without libyaml: install python3-yaml / a PyYAML wheel with libyaml"
    fast = yamlpos.read_yaml(text, "f.yaml")
    pure = yamlpos._read_pure(text, "f.yaml")
    assert fast.data == pure.data
    assert fast.positions == pure.positions
    assert [d.render() for d in fast.diagnostics] == [d.render() for d in pure.diagnostics]
    if name == "anchors":
        assert yamlpos._read_fast(text, "f.yaml") is not None  # the fast path was taken


_FEED = "version: 1\nrepositories:\n  web:\n    feed: https://r.example\n    upstream_name: web\n"


@pytest.mark.parametrize("extra, expected", [
    ("    tags: {includes: ['1.*']}\n",
     ["6:12: repositories.web.tags.includes: unknown key 'includes': did you mean 'include'? allowed keys: exclude, "
      "include, latest, prereleases, semver, semver_suffix, sort"]),
    ("    tags: {semvar: '^1'}\n",
     ["6:12: repositories.web.tags.semvar: unknown key 'semvar': did you mean 'semver'? allowed keys: exclude, "
      "include, latest, prereleases, semver, semver_suffix, sort"]),
    ("    tags: {semver: '>=1.2 <'}\n",
     ["6:20: repositories.web.tags.semver: invalid semver range '>=1.2 <': Invalid comparator: < (hint: npm range "
      "syntax: comparators (>=1.2.0 <2.0.0), ^1.2, ~1.2, 1.x, 1.2 - 1.4, alternatives joined by ||)"]),
    ("    tags: {include: ['>=1.2 <2']}\n",
     ["6:22: repositories.web.tags.include[0]: pattern '>=1.2 <2' can never match a tag (tags hold only letters, "
      "digits, '_', '.' and '-') (hint: for a version range use semver: '>=1.2 <2')"]),
    ("    tags: {latest: 0}\n",
     ["6:20: repositories.web.tags.latest: must be at least 1, got 0 (latest: N keeps the N newest tags; leave it "
      "out to keep every tag)"]),
    ("    tags: {latest: 3, sort: newest}\n",
     ["6:29: repositories.web.tags.sort: expected one of semver, alphanumeric, got a string ('newest')"]),
    ("    tags: {include: [x], prereleases: true, sort: alphanumeric}\n",
     ["6:26: repositories.web.tags.prereleases: prereleases only applies with semver, or latest with sort: semver "
      "(it says which tags are versions)",
      "6:45: repositories.web.tags.sort: sort only applies with latest (it ranks the tags latest keeps)"]),
    ("    platforms: [linux, linux/amd64, linux/amd64]\n",
     ["6:17: repositories.web.platforms[0]: invalid platform 'linux': expected OS/ARCH or OS/ARCH/VARIANT (hint: "
      "write OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64, linux/arm64/v8, windows/amd64)",
      "6:37: repositories.web.platforms[2]: platform 'linux/amd64' is listed twice"]),
    ("    platforms: []\n", ["6:16: repositories.web.platforms: must list at least 1 item (leave the key out instead)"]),
], ids=["includes", "semvar", "bad-range", "range-as-glob", "latest-0", "sort-enum", "options-without-their-step",
        "platforms", "no-platforms"])
def test_tag_selection_and_platform_diagnostics(extra: str, expected: list[str], tmp_path: Path) -> None:
    assert check(_FEED + extra, tmp_path) == expected


def test_platforms_need_a_feed_and_copy_platforms_need_tags_or_indexes(tmp_path: Path) -> None:
    text = ("version: 1\nrepositories:\n  a: {}\n  web:\n    platforms: [linux/amd64]\n"
            "    copy: [{from: a, manifests: all, platforms: [linux/amd64]}]\n")
    assert check(text, tmp_path) == [
        "5:5: repositories.web.platforms: 'platforms' only applies to a repository with a feed (it filters or "
        "mirrors the sync)",
        "6:38: repositories.web.copy[0].platforms: platforms only applies to copied tags and indexes (a copied "
        "manifest is one platform already)"]
