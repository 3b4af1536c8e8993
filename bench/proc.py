"""Run a child process and measure it: wall time, CPU time and peak RSS of that child alone.

Peak RSS comes from GNU time (``/usr/bin/time -f %M``, Debian package ``time``), which
forks the command from its own tiny process. Measuring ``wait4``/``getrusage`` from here
would be wrong: on Linux a child's ``ru_maxrss`` starts at the RSS of the process that
forked it, and the harness holds the fixture set in memory (a 2 MiB ``curl`` would show
as 160 MB). ``getrusage(RUSAGE_CHILDREN)`` is worse still: the maximum over every child.
Output goes to files, not pipes, so reaping cannot deadlock on a full pipe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    cmd: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_kib: int
    stdout: str
    stderr: str

    def check(self) -> Run:
        if self.returncode != 0:
            raise CommandFailed(self)
        return self

    def to_json(self) -> dict[str, object]:
        return {"wall_s": round(self.wall_s, 4), "cpu_s": round(self.cpu_s, 3),
                "peak_rss_mb": round(self.peak_rss_kib / 1024, 1), "returncode": self.returncode}


class CommandFailed(RuntimeError):
    def __init__(self, run: Run) -> None:
        tail = (run.stderr.strip() or run.stdout.strip())[-1500:]
        super().__init__(f"`{' '.join(run.cmd)}` exited {run.returncode} after {run.wall_s:.1f} s:\n{tail}")
        self.run = run


TIME_BIN = "/usr/bin/time"


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 1800) -> Run:
    if not os.path.exists(TIME_BIN):
        raise RuntimeError(f"{TIME_BIN} is missing (it measures peak RSS): apt-get install -y time")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r", suffix=".time") as rss:
        t0 = time.perf_counter()
        proc = subprocess.Popen([TIME_BIN, "-q", "-f", "%M %U %S", "-o", rss.name, *cmd], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
        # its own process group: a timeout kills the command too, not only /usr/bin/time
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        words = (rss.read().strip().splitlines() or [""])[-1].split()
        peak_kib = int(words[0]) if len(words) == 3 else 0
        cpu = float(words[1]) + float(words[2]) if len(words) == 3 else usage.ru_utime + usage.ru_stime
        return Run(cmd, proc.returncode, wall, cpu, peak_kib,
                   out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def reconciler_env() -> dict[str, str]:
    """The checkout under test, whatever else is installed. Without
    ``PYTHONDONTWRITEBYTECODE``: an installed package has its bytecode (pip compiles it),
    and recompiling our 60-odd modules on every run added 0.13 s to each command."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": pythonpath, "NO_COLOR": "1"}


def compile_checkout() -> None:
    """Write the bytecode of the checkout under test before anything is timed (what
    ``pip install`` does), so that no measured command pays for compiling."""
    import compileall

    compileall.compile_dir(str(REPO_ROOT / "reconciler"), quiet=1)


def reconciler_cmd(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", "--store", str(store), *args]


def reconciler(store: Path, *args: str, timeout: float = 1800) -> Run:
    return run(reconciler_cmd(store, *args), env=reconciler_env(), timeout=timeout)


_HAS: dict[tuple[str, ...], bool] = {}


def has_command(*words: str) -> bool:
    """True when ``reconciler WORDS --help`` works on this checkout."""
    if words in _HAS:
        return _HAS[words]
    r = subprocess.run([sys.executable, "-m", "reconciler", *words, "--help"], env=reconciler_env(),
                       capture_output=True, timeout=60)
    _HAS[words] = r.returncode == 0
    return _HAS[words]


def tool_version(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (r.stdout.strip() or r.stderr.strip()).splitlines()[0] if (r.stdout or r.stderr) else "?"


def popen_server(cmd: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=f, stdin=subprocess.DEVNULL, env=env, cwd=cwd)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
