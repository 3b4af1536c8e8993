"""A real PostgreSQL server for the PostgreSQL store's tests, started by the suite itself.

``PostgresServer.start()`` runs ``initdb`` into a fresh folder under /tmp (trust auth, no
fsync: a test server), starts it with ``pg_ctl`` on a free 127.0.0.1 port with its unix
socket in that folder, and creates ``reconciler_template``: a database the store has
already migrated. ``new_database()`` copies that template (``CREATE DATABASE ...
TEMPLATE``: 0.5 s on a busy machine), so ``checkout()`` hands out databases that earlier
tests gave back with ``checkin()``, which empties them (TRUNCATE: 0.05 s) after ending
any connection a test left behind. ``stop()`` stops the server and removes the folder.

PostgreSQL refuses to run as root: as root the binaries run as the ``postgres`` system
user (``runuser``), which the Debian package creates. Missing binaries make the test
FAIL naming the Debian package; nothing is skipped.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.registry import free_port

APT_PACKAGE = "postgresql"
TEMPLATE = "reconciler_template"
#: the suite's server: nothing durable (a test server), room for the parallel tests'
#: connections, small buffers
TEST_SETTINGS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                 "-c shared_buffers=32MB")


def server_binaries() -> Path:
    """The bin folder of the newest installed PostgreSQL server (Debian's layout), or FAIL."""
    override = os.environ.get("PG_BINDIR")
    candidates = [override] if override else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    for bindir in reversed(candidates):
        if all(os.access(Path(bindir) / b, os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return Path(bindir)
    pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under /usr/lib/postgresql/*/bin: "
                f"install the Debian package '{APT_PACKAGE}' (apt-get install -y {APT_PACKAGE}, "
                "or run scripts/setup.sh --test)", pytrace=False)


def _run_as() -> tuple[list[str], str | None]:
    """The command prefix that drops root, and the user it runs as (None: ourselves)."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(f"running as root and there is no 'postgres' user to run PostgreSQL as: install the Debian "
                    f"package '{APT_PACKAGE}', which creates it", pytrace=False)
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root and runuser(1) is missing: install the Debian package 'util-linux'",
                    pytrace=False)
    return [runuser, "-u", "postgres", "--"], "postgres"


class PostgresServer:
    def __init__(self, bindir: Path, base: Path, port: int, prefix: list[str], settings: str = TEST_SETTINGS) -> None:
        self.bindir, self.base, self.port, self._prefix = bindir, base, port, prefix
        self.settings = settings
        self.data = base / "data"
        self.log = base / "server.log"
        self._names = itertools.count(1)
        self._free: list[str] = []

    @classmethod
    def start(cls, settings: str = TEST_SETTINGS) -> PostgresServer:
        """``settings``: the server's ``-c`` options (the benchmark runs it as a user would)."""
        bindir = server_binaries()
        prefix, user = _run_as()
        # not pytest's tmp_path: its parents are private to root, and the server runs as postgres
        base = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        server: PostgresServer | None = None
        try:
            # cwd: the server's user may not be allowed into ours (a checkout under /root)
            init = subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(base / "data"), "-U", "postgres",
                                            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
                                  capture_output=True, text=True, timeout=120, cwd=base)
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}{init.stderr}")
            for attempt in range(5):  # another test run may take the free port first
                server = cls(bindir, base, free_port(), prefix, settings)
                if server._pg_ctl_start():
                    break
                if attempt == 4:
                    raise RuntimeError(f"PostgreSQL did not start:\n{server.log_tail()}")
            assert server is not None
            server._make_template()
            return server
        except BaseException:
            if server is not None:
                server.stop()
            else:
                shutil.rmtree(base, ignore_errors=True)
            raise

    def _pg_ctl_start(self) -> bool:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.base} "
                   f"{self.settings}")
        proc = subprocess.run(self._prefix + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                                              "-w", "-t", "60", "-o", options, "start"],
                              capture_output=True, text=True, timeout=90, cwd=self.base)
        return proc.returncode == 0

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no server log)"

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        """Run one statement in the ``postgres`` database (outside a transaction)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode())

    def _make_template(self) -> None:
        """The schema only: no store id, so each copy binds to its test's blobs folder."""
        import psycopg

        from reconciler.store.postgres.migrations import migrate

        self.admin(f"CREATE DATABASE {TEMPLATE}")
        with psycopg.connect(self.url(TEMPLATE), autocommit=True) as conn:
            migrate(conn)

    def new_database(self) -> str:
        """A fresh, migrated, empty store database; its URL."""
        name = f"store_{os.getpid()}_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def checkout(self) -> str:
        """An empty, migrated store database: a returned one if any, else a new one."""
        return self._free.pop() if self._free else self.new_database()

    def checkin(self, url: str) -> None:
        """Empty a database a test is done with and keep it for the next test."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url, autocommit=True) as conn:
            # a lock holder or writer the test left running must not block the TRUNCATE
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'migrations'")]
            # the template's only data besides the migration log: the generation counter
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE".encode())
            conn.execute("INSERT INTO meta (key, value) VALUES ('generation', 0)")
        self._free.append(url)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                subprocess.run(self._prefix + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                               "-w", "-t", "30", "stop"], capture_output=True, timeout=60, cwd=self.base)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
