"""Crane mode's inputs: app files v1-v4 (good and bad), the data directory walk and its
reload on change, and the ``crane.conf`` reader."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from reconciler.errors import CraneDataInvalid
from reconciler.server.crane.appfile import parse_app_file
from reconciler.server.crane.config import CraneConfig, read_config
from reconciler.server.crane.index import Snapshot, Watcher, load_snapshot

D = "sha256:" + "d" * 64
I1, I2 = "a" * 64, "b" * 64  # v1 image ids
COMMON = {"type": "pulp-docker-redirect", "repository": "synctest", "repo-registry-id": "pulpdemo/synctest",
          "url": "https://pulp.example.com/pulp/docker/v2/synctest/"}


def app(version: int, **extra: object) -> dict[str, object]:
    return {**COMMON, "version": version, **extra}


def raw(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_parse_every_version() -> None:
    v1 = parse_app_file(raw(app(1, images=[{"id": I1}, {"id": I2}], tags={"latest": I1})), "v1.json")
    assert (v1.images, dict(v1.tags), v1.schema2_data, v1.is_v1) == ((I1, I2), {"latest": I1}, None, True)
    v2 = parse_app_file(raw(app(2, protected=True)), "v2.json")
    assert (v2.protected, v2.schema2_data, v2.url_path) == (True, None, "/pulp/docker/v2/synctest/")
    v3 = parse_app_file(raw(app(3, schema2_data=[D, "latest"])), "v3.json")
    assert (v3.schema2_data, v3.manifest_list_data) == (frozenset({D, "latest"}), frozenset())
    v4 = parse_app_file(raw(app(4, schema2_data=[], manifest_list_data=[D, "multi"],
                                manifest_list_amd64_tags={"multi": [D, 2]})), "v4.json")
    assert (v4.manifest_list_data, dict(v4.amd64_tags), v4.protected) == (frozenset({D, "multi"}), {"multi": (D, 2)}, False)


@pytest.mark.parametrize(("data", "message"), [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (raw([1, 2]), "must be a JSON object"),
    (raw(app(5)), "version 5 not supported"),
    (raw(app(True)), "version True not supported"),
    (raw({**app(2), "repo-registry-id": ""}), "'repo-registry-id' is missing"),
    (raw({k: v for k, v in app(2).items() if k != "url"}), "'url' is missing"),
    (raw(app(2, protected="yes")), "'protected' must be true or false"),
    (raw(app(2, repository=7)), "'repository' must be a string"),
    (raw(app(1, tags={})), "'images' must be a list"),
    (raw(app(1, images=[{"name": "x"}], tags={})), "images[0] has no string 'id'"),
    (raw(app(1, images=[], tags=[])), "'tags' must be an object"),
    (raw(app(3)), "'schema2_data' must be a list of strings (version 3)"),
    (raw(app(4, schema2_data=[], manifest_list_data=[1])), "'manifest_list_data' must be a list"),
    (raw(app(4, schema2_data=[], manifest_list_data=[])), "'manifest_list_amd64_tags' must be an object"),
    (raw(app(4, schema2_data=[], manifest_list_data=[], manifest_list_amd64_tags={"t": [D, 3]})),
     "manifest_list_amd64_tags['t'] must be [digest, 1 or 2]"),
], ids=["syntax", "binary", "array", "version-5", "version-bool", "empty-id", "no-url", "protected-str",
        "repository-int", "v1-no-images", "v1-image-no-id", "v1-tags-list", "v3-no-s2", "v4-list-ints",
        "v4-no-amd64", "v4-amd64-version"])
def test_bad_app_files_name_the_file(data: bytes, message: str) -> None:
    with pytest.raises(CraneDataInvalid) as info:
        parse_app_file(data, "/data/bad.json")
    assert str(info.value).startswith("/data/bad.json: ")
    assert message in str(info.value)


def write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def v4(name: str, repo: str = "r") -> dict[str, object]:
    return {**app(4, schema2_data=["latest"], manifest_list_data=[], manifest_list_amd64_tags={}),
            "repo-registry-id": name, "repository": repo}


def test_walk_is_recursive_follows_symlinks_and_survives_loops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write(data / "v2/app/a.json", v4("ns/a"))
    write(tmp_path / "elsewhere/b.json", v4("ns/b"))
    (data / "linked").symlink_to(tmp_path / "elsewhere")
    (data / "v2/app/loop").symlink_to(data)          # a symlink loop: walked once, not forever
    write(data / "v1/app/c.json", app(1, images=[{"id": I1}], tags={}, **{"repo-registry-id": "c"}))
    (data / "notes.txt").write_text("not an app file")
    snap = load_snapshot(str(data))
    assert sorted(snap.v2) == ["ns/a", "ns/b"] and sorted(snap.v1) == ["c"]
    assert snap.images == {I1: ("c",)} and snap.errors == ()


def test_duplicate_registry_id_is_logged_and_the_later_path_wins(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "a.json", v4("same", repo="first"))
    write(tmp_path / "b.json", v4("same", repo="second"))
    with caplog.at_level(logging.WARNING, "reconciler.server.crane"):
        snap = load_snapshot(str(tmp_path))
    assert snap.v2["same"].repository == "second"
    assert "a.json" in caplog.text and "b.json" in caplog.text and "both define same" in caplog.text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reload_new_file_edit_and_corrupt_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A new file appears after the interval; an in-place edit is noticed (Crane missed
    it); a corrupted file is skipped with an error naming it while the others serve."""
    write(tmp_path / "a.json", v4("ns/a"))
    clock = Clock()
    watcher = Watcher(str(tmp_path), 5, clock=clock)
    assert sorted(watcher.current().v2) == ["ns/a"]

    write(tmp_path / "sub/b.json", v4("ns/b"))
    clock.now += 4
    assert sorted(watcher.current().v2) == ["ns/a"]          # not yet: the interval has not passed
    clock.now += 1
    assert sorted(watcher.current().v2) == ["ns/a", "ns/b"]

    first = watcher.current()
    clock.now += 5
    assert watcher.current() is first                        # nothing changed: the same snapshot

    doc = v4("ns/a")
    doc["protected"] = True
    before = os.stat(tmp_path)
    write(tmp_path / "a.json", doc)
    os.utime(tmp_path, ns=(before.st_atime_ns, before.st_mtime_ns))   # in place: the directory looks unchanged
    clock.now += 5
    assert watcher.current().v2["ns/a"].protected

    with caplog.at_level(logging.ERROR, "reconciler.server.crane"):
        write(tmp_path / "a.json", "{truncated")
        clock.now += 5
        snap = watcher.current()
    assert sorted(snap.v2) == ["ns/b"]
    assert f"{tmp_path / 'a.json'}: not valid JSON" in caplog.text
    assert snap.errors and str(tmp_path / "a.json") in snap.errors[0]


def test_missing_data_dir_serves_nothing_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "reconciler.server.crane"):
        snap = load_snapshot(str(tmp_path / "gone"))
    assert (snap.v1, snap.v2) == ({}, {}) and "gone" in caplog.text


def test_config_defaults_and_every_key(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.conf", "")
    assert read_config(empty) == CraneConfig()
    assert (CraneConfig().data_dir, CraneConfig().polling_interval) == ("/var/lib/crane/metadata/", 60)
    full = write(tmp_path / "crane.conf", """
[general]
debug: true
data_dir: /srv/crane/app
data_dir_polling_interval = 5
endpoint: registry.example.com:443

[serve_content]
enable: yes
content_dir_v1: /srv/v1
content_dir_v2: /srv/v2
use_x_sendfile: true

[cdn]
url_match: https://a/
url_replace: https://b/
url_auth_secret: 00ff
url_auth_param: token
url_auth_ttl: 60
url_auth_algo: SHA1
""")
    assert read_config(full) == CraneConfig(data_dir="/srv/crane/app", polling_interval=5,
                                            endpoint="registry.example.com:443", debug=True, serve_content=True,
                                            content_dir_v1="/srv/v1", content_dir_v2="/srv/v2",
                                            url_match="https://a/", url_replace="https://b/",
                                            url_auth_secret="00ff", url_auth_param="token", url_auth_ttl=60,
                                            url_auth_algo="sha1")
    assert read_config(full).with_overrides(data_dir="/x", polling_interval=1).data_dir == "/x"


def test_config_unsupported_sections_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    conf = write(tmp_path / "c.conf", "[general]\nendpoint:\n[solr]\nurl: http://solr/{0}\n[cdn]\nurl_auth_secret: abc\n")
    with caplog.at_level(logging.WARNING, "reconciler.server.crane"):
        config = read_config(conf)
    assert config.endpoint is None                     # empty = the request's Host
    assert config.url_auth_secret is None              # odd-length hex: ignored with an error, as Crane did
    assert "[solr]" in caplog.text and "url_auth_secret is not an even-length hex" in caplog.text


@pytest.mark.parametrize(("text", "message"), [
    ("[general]\ndata_dir_polling_interval: soon\n", "data_dir_polling_interval = 'soon' is not a whole number"),
    ("[general]\ndata_dir_polling_interval: -1\n", "is not a whole number"),
    ("[general]\ndebug: maybe\n", "[general] debug = 'maybe' is not a boolean"),
    ("[serve_content]\nenabled: true\n", "[serve_content] unknown key 'enabled'"),
    ("[cdn]\nurl_match: x\n", "[cdn] needs both url_match and url_replace"),
    ("[cdn]\nurl_auth_ttl: 1h\n", "[cdn] url_auth_ttl = '1h' is not a whole number"),
    ("[cdn]\nurl_auth_algo: sha512\n", "url_auth_algo = 'sha512' is not supported"),
    ("data_dir: /x\n", "not a valid INI file"),
], ids=["interval-word", "interval-negative", "debug", "unknown-key", "cdn-half", "ttl", "algo", "no-section"])
def test_config_errors_name_file_section_and_key(tmp_path: Path, text: str, message: str) -> None:
    conf = write(tmp_path / "crane.conf", text)
    with pytest.raises(CraneDataInvalid) as info:
        read_config(conf)
    assert str(conf) in str(info.value) and message in str(info.value)


def test_config_check(tmp_path: Path) -> None:
    with pytest.raises(CraneDataInvalid, match="does not exist"):
        CraneConfig(data_dir=str(tmp_path / "nope")).check()
    with pytest.raises(CraneDataInvalid, match=r"\[serve_content\] content_dir_v1"):
        CraneConfig(data_dir=str(tmp_path), serve_content=True, content_dir_v1=str(tmp_path / "no")).check()
    with pytest.raises(CraneDataInvalid, match="cannot read crane config"):
        read_config(tmp_path / "missing.conf")


TRAVERSAL = "../../../../../../../../etc/passwd"


@pytest.mark.parametrize(("doc", "message"), [
    (app(4, schema2_data=[], manifest_list_data=[], manifest_list_amd64_tags={"passwd": [TRAVERSAL, 2]}),
     "manifest_list_amd64_tags['passwd'] must be [digest, 1 or 2] under a valid tag"),
    (app(4, schema2_data=[], manifest_list_data=[], manifest_list_amd64_tags={"../x": [D, 2]}),
     "manifest_list_amd64_tags['../x']"),
    (app(4, schema2_data=[], manifest_list_data=[], manifest_list_amd64_tags={"t": ["sha256:" + "d" * 64 + "\n", 2]}),
     "manifest_list_amd64_tags['t']"),
    (app(3, schema2_data=[D, TRAVERSAL]), f"schema2_data[1] = {TRAVERSAL!r} is neither a tag nor"),
    (app(3, schema2_data=["latest\n"]), "schema2_data[0] = 'latest\\n' is neither a tag nor"),
    (app(4, schema2_data=[], manifest_list_data=["../../secret/manifests/2/" + D], manifest_list_amd64_tags={}),
     "manifest_list_data[0]"),
    (app(1, images=[{"id": "../../etc"}], tags={}), "images[0] id '../../etc' is not a v1 image id"),
    (app(1, images=[{"id": I1}], tags={"latest": "../" + I1}), "is not a v1 image id"),
    (app(1, images=[{"id": I1}], tags={"a b": I1}), "tags: 'a b' is not a valid tag name"),
    ({**app(2), "url": "https://cdn.example.com/x/\r\nSet-Cookie: a=b"}, "'url'"),
    ({**app(2), "url": "javascript:alert(1)"}, "'url'"),
    ({**app(2), "url": "https://cdn.example.com/a b/"}, "'url'"),
    ({**app(2), "repo-registry-id": "../secret"}, "invalid repo-registry-id '../secret'"),
    ({**app(2), "repo-registry-id": "ns/app\n"}, "invalid repo-registry-id"),
], ids=["amd64-digest-traversal", "amd64-tag-traversal", "amd64-digest-newline", "schema2-traversal",
        "schema2-newline", "list-traversal", "v1-image-id", "v1-tag-value", "v1-tag-name", "url-crlf",
        "url-scheme", "url-space", "registry-id-traversal", "registry-id-newline"])
def test_values_that_become_paths_or_urls_are_validated(doc: dict[str, object], message: str) -> None:
    """A digest, tag, image id or URL in an app file becomes a file path (serve-content
    mode) or a Location header (redirect mode): a bad one rejects the whole file."""
    with pytest.raises(CraneDataInvalid) as err:
        parse_app_file(raw(doc), "evil.json")
    assert err.value.message.startswith("evil.json: ") and message in err.value.message, err.value.message


def test_only_regular_files_of_bounded_size_are_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A FIFO would hang every worker at boot and a symlink to /dev/zero would exhaust
    their memory: both are skipped with a log line naming them, as is an oversized file,
    and the good files load (in bounded time: a hang fails the test, not the suite)."""
    import threading

    from reconciler.server.crane.appfile import MAX_APP_FILE

    write(tmp_path / "good.json", v4("ns/good"))
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    with open(tmp_path / "huge.json", "wb") as f:
        f.truncate(MAX_APP_FILE + 1)  # sparse: no disk used
    loaded: list[Snapshot] = []
    with caplog.at_level(logging.ERROR, "reconciler.server.crane"):
        loader = threading.Thread(target=lambda: loaded.append(load_snapshot(str(tmp_path))), daemon=True)
        loader.start()
        loader.join(20)
    assert loaded, "loading the data directory hung"
    snap = loaded[0]
    assert sorted(snap.v2) == ["ns/good"]
    errors = "\n".join(snap.errors)
    assert "fifo.json: not a regular file (a FIFO)" in errors
    assert "zero.json: not a regular file (a character device)" in errors
    assert "huge.json: over 32 MiB" in errors
    assert sum("skipping crane app file" in r.getMessage() for r in caplog.records) == 3
