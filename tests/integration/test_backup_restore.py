"""Backup and restore on both backends, with real processes: ``store backup`` while an
apply is in flight (a ``FaultProxy`` holds one of its blob downloads), ``store restore``
into a new store, and the end state a user checks: ``store check`` clean, ``plan`` says
``No changes.`` and the restored store serves every tag with the original's digest.

The embedded store keeps its blobs in its directory; the PostgreSQL store its blobs and
manifests in moto's S3 server. Also: a restore in place under a running ``serve``, a
store directory swapped under it, and the PostgreSQL drill of the issue: a dump restored
with PostgreSQL's own tools and pointed at production's bucket, whose gc must delete
nothing of production.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from reconciler import api
from reconciler.errors import StoreIdentityError
from reconciler.model.mediatypes import ACCEPT_ALL
from reconciler.store.protocol import Store
from tests.support.faultproxy import FaultProxy
from tests.support.imagegen import Image, build_image, build_multiarch
from tests.support.postgres import PostgresServer
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry
from tests.support.s3server import S3Server
from tests.support.serving import REPO_ROOT, run_server

pytestmark = pytest.mark.integration
WAIT = 120.0


@dataclass
class Side:
    """One store: where it is, where its blobs are, and the environment its CLI needs."""

    location: str
    blobs: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def args(self) -> list[str]:
        return ["--store", self.location, *(["--blobs", self.blobs] if self.blobs else [])]

    def open(self) -> Store:
        old = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return api.open_store(self.location, self.blobs)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def cli(side: Side, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "reconciler", *side.args(), *args], capture_output=True, text=True,
                          timeout=300, env=_env(side))
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def start(side: Side, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "reconciler", *side.args(), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(side))


def _env(side: Side) -> dict[str, str]:
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **side.env, "NO_COLOR": "1", "PYTHONPATH": pythonpath}


@pytest.fixture(params=["sqlite", "postgresql"])
def sides(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Side, Side]]:
    """(original, restore target): two embedded stores, or two PostgreSQL databases with
    their bytes under two prefixes of moto's S3 server."""
    if request.param == "sqlite":
        yield Side(str(tmp_path / "original")), Side(str(tmp_path / "restored"))
        return
    pg: PostgresServer = request.getfixturevalue("postgres_server")
    s3: S3Server = request.getfixturevalue("s3_server")
    urls = [pg.checkout(), pg.checkout()]
    try:
        yield (Side(urls[0], s3.bucket_url("original"), dict(s3.env)),
               Side(urls[1], s3.bucket_url("restored"), dict(s3.env)))
    finally:
        for url in urls:
            pg.checkin(url)


def upstream(registry: RunningRegistry, name: str) -> dict[str, Image]:
    """Docker schema2, a manifest list, an OCI manifest and an OCI index, tagged."""
    images = {"s2": build_image(f"{name}-s2"), "list": build_multiarch(f"{name}-list"),
              "oci": build_image(f"{name}-oci", oci=True), "index": build_multiarch(f"{name}-idx", oci=True)}
    for tag, img in images.items():
        push_image(registry.url, name, img, [tag])
    return images


def write_yaml(path: Path, proxy: FaultProxy, name: str) -> Path:
    path.write_text(f"""version: 1
registries:
  up: {{url: "{proxy.url}", tls_verify: false, max_concurrency: 1}}
repositories:
  web: {{feed: up, upstream_name: {name}, mirror: true, publish: team/web}}
  prod:
    copy:
      - {{from: web, tags: [s2]}}
    publish: team/prod
""")
    return path


def served(side: Side, tmp_path: Path, refs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The digest ``reconciler serve`` answers for each (publish name, tag)."""
    with run_server(side.location, tmp_path / f"serve-{abs(hash(side.location))}.log",
                    env={**side.env, **({"RECONCILER_BLOBS": side.blobs} if side.blobs else {})}) as server:
        out = {}
        for name, tag in refs:
            r = requests.head(f"{server.url}/v2/{name}/manifests/{tag}", headers={"Accept": ACCEPT_ALL}, timeout=30)
            assert r.status_code == 200, (name, tag, r.status_code, server.log())
            out[(name, tag)] = r.headers["Docker-Content-Digest"]
    return out


def test_backup_during_an_apply_restores_to_a_clean_store_serving_the_same_digests(
        sides: tuple[Side, Side], proxy: FaultProxy, registry: RunningRegistry, repo_name: str,
        tmp_path: Path) -> None:
    original, target = sides
    upstream(registry, repo_name)
    yaml = write_yaml(tmp_path / "repos.yaml", proxy, repo_name)
    cli(original, "apply", "-f", str(yaml))
    # new upstream content; the apply that fetches it is held at one of its blobs
    newer = build_image(f"{repo_name}-v2")
    push_image(registry.url, repo_name, newer, ["v2"])
    held = proxy.add(f"^GET .*/blobs/{max(newer.blobs)}$", "hold")
    apply = start(original, "apply", "-f", str(yaml))
    try:
        assert held.held.wait(WAIT), apply.communicate()
        backup = tmp_path / "backup"
        done = cli(original, "store", "backup", "--to", str(backup), "--json")  # the apply holds the store lock
        assert '"blobs":' in done.stdout
    finally:
        held.release()
        out, err = apply.communicate(timeout=WAIT)
    assert apply.returncode == 0, out + err

    # the backup is the store as it was before the held apply committed: consistent
    restored = cli(target, "store", "restore", "--from", str(backup))
    assert "new identity" in restored.stdout
    assert cli(target, "store", "check").returncode == 0
    pending = cli(target, "plan", "-f", str(yaml), "--detailed-exitcode", check=False)
    assert pending.returncode == 2 and "v2" in pending.stdout, pending.stdout + pending.stderr
    cli(target, "apply", "-f", str(yaml))
    assert cli(target, "plan", "-f", str(yaml), "--detailed-exitcode").returncode == 0

    # a second backup, after the apply, restores to "No changes." at once
    again = tmp_path / "restored-again"
    second = Side(str(again)) if target.blobs is None else None
    cli(original, "store", "backup", "--to", str(backup))
    if second is not None:
        cli(second, "store", "restore", "--from", str(backup))
        assert "No changes." in cli(second, "plan", "-f", str(yaml)).stdout
    refs = [("team/web", t) for t in ("s2", "list", "oci", "index", "v2")] + [("team/prod", "s2")]
    assert served(original, tmp_path, refs) == served(target, tmp_path, refs)


def test_a_restore_refuses_a_store_in_place_unless_forced(sides: tuple[Side, Side], tmp_path: Path) -> None:
    original, target = sides
    cli(original, "apply", "-f", str(REPO_ROOT / "examples" / "demo.yaml"))
    cli(original, "store", "backup", "--to", str(tmp_path / "b"))
    cli(target, "store", "restore", "--from", str(tmp_path / "b"))
    again = cli(target, "store", "restore", "--from", str(tmp_path / "b"), check=False)
    assert again.returncode == 1 and "already holds a store" in again.stderr and "--force" in again.stderr
    cli(target, "store", "restore", "--from", str(tmp_path / "b"), "--force")
    assert cli(target, "store", "check").returncode == 0


def _tags(server_url: str, name: str) -> list[str]:
    r = requests.get(f"{server_url}/v2/{name}/tags/list", timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["tags"])


def test_serve_keeps_serving_through_a_restore_in_place_and_a_swapped_store(tmp_path: Path) -> None:
    """A store restored in place, or a restored directory moved into place, under a running
    server: the next requests answer from the restored store, without a restart."""
    store = Side(str(tmp_path / "live"))
    demo = REPO_ROOT / "examples" / "demo.yaml"
    cli(store, "apply", "-f", str(demo))
    cli(store, "store", "backup", "--to", str(tmp_path / "b"))
    with run_server(store.location, tmp_path / "serve.log", workers=1) as server:
        before = _tags(server.url, "pulpdemo/schema2")
        cli(store, "remove", "tag", "schema2", *before)
        cli(store, "publish", "schema2")
        assert _tags(server.url, "pulpdemo/schema2") == []
        cli(store, "store", "restore", "--from", str(tmp_path / "b"), "--force")
        assert _tags(server.url, "pulpdemo/schema2") == before  # restored in place
        cli(store, "remove", "tag", "schema2", *before)
        cli(store, "publish", "schema2")
        cli(Side(str(tmp_path / "new")), "store", "restore", "--from", str(tmp_path / "b"))
        os.rename(tmp_path / "live", tmp_path / "old")
        os.rename(tmp_path / "new", tmp_path / "live")
        assert _tags(server.url, "pulpdemo/schema2") == before  # another store.db: reopened
        assert "opened it again" in server.log()


def test_a_restored_dump_pointed_at_production_blobs_deletes_nothing_of_production(
        postgres_server: PostgresServer, s3_server: S3Server, tmp_path: Path) -> None:
    """The drill of the issue, done with PostgreSQL's own tools: pg_dump production,
    restore the dump into another database, point it at production's bucket, delete a
    repository there and run gc. Production must keep every byte."""
    prod_url, drill_url = postgres_server.checkout(), postgres_server.checkout()
    blobs = s3_server.bucket_url("production")
    prod = Side(prod_url, blobs, dict(s3_server.env))
    drill = Side(drill_url, blobs, dict(s3_server.env))
    try:
        cli(prod, "apply", "-f", str(REPO_ROOT / "examples" / "demo.yaml"))
        dump = tmp_path / "prod.sql"
        pg = Path(shutil.which("pg_dump") or "pg_dump")
        subprocess.run([str(pg), "--no-owner", f"--file={dump}", f"--dbname={prod_url}"], check=True, timeout=120)
        subprocess.run([shutil.which("psql") or "psql", "-q", "-v", "ON_ERROR_STOP=1", f"--dbname={drill_url}",
                        "-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"], check=True, timeout=120,
                       capture_output=True)
        subprocess.run([shutil.which("psql") or "psql", "-q", "-v", "ON_ERROR_STOP=1", f"--dbname={drill_url}",
                        f"--file={dump}"], check=True, timeout=120, capture_output=True)
        keys = s3_server.keys(blobs)
        store = drill.open()
        try:
            assert {r.id for r in store.repository_list()}  # the drill reads and serves
            with pytest.raises(StoreIdentityError, match="is a copy of the store at PostgreSQL database"):
                store.repository_delete("schema2")
            with pytest.raises(StoreIdentityError):
                store.gc()
        finally:
            store.close()
        gc = cli(drill, "store", "gc", check=False)
        assert gc.returncode == 1 and "writes and gc are refused" in gc.stderr
        assert s3_server.keys(blobs) == keys
        assert cli(prod, "store", "check").returncode == 0

        # `store restore` into production's bucket without --keep-identity is refused as well
        cli(prod, "store", "backup", "--to", str(tmp_path / "b"))
        refused = cli(drill, "store", "restore", "--from", str(tmp_path / "b"), "--force", check=False)
        assert refused.returncode == 1 and "a restore must not take it over" in refused.stderr, refused.stderr
        assert cli(prod, "store", "check").returncode == 0 and s3_server.keys(blobs) == keys
    finally:
        postgres_server.checkin(prod_url)
        postgres_server.checkin(drill_url)


def test_restore_with_keep_identity_replaces_a_lost_store(postgres_server: PostgresServer, s3_server: S3Server,
                                                          tmp_path: Path) -> None:
    """Production's database is lost, its bucket is fine: the backup restored into a new
    database with --keep-identity takes the bucket over and writes again."""
    lost_url, new_url = postgres_server.checkout(), postgres_server.checkout()
    blobs = s3_server.bucket_url("keep")
    lost = Side(lost_url, blobs, dict(s3_server.env))
    replacement = Side(new_url, blobs, dict(s3_server.env))
    try:
        cli(lost, "apply", "-f", str(REPO_ROOT / "examples" / "demo.yaml"))
        cli(lost, "store", "backup", "--to", str(tmp_path / "b"))
        postgres_server.checkin(lost_url)  # the database is gone (emptied)
        cli(replacement, "store", "restore", "--from", str(tmp_path / "b"), "--keep-identity")
        assert "No changes." in cli(replacement, "plan", "-f", str(REPO_ROOT / "examples" / "demo.yaml")).stdout
        cli(replacement, "repo", "delete", "schema2", "--yes")
        assert cli(replacement, "store", "gc").returncode == 0
        assert cli(replacement, "store", "check").returncode == 0
    finally:
        postgres_server.checkin(new_url)

