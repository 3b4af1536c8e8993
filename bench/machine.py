"""Facts about the machine and the software under test, recorded with every result."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from bench import proc
from bench.registry import REGISTRY_BIN


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_total_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def _git(*args: str) -> str:
    r = subprocess.run(["git", *args], cwd=proc.REPO_ROOT, capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "?"


def loadavg() -> list[float]:
    return list(os.getloadavg())


def facts() -> dict[str, Any]:
    reconciler = subprocess.run([sys.executable, "-m", "reconciler", "--version"], env=proc.reconciler_env(),
                                capture_output=True, text=True)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_mib": _mem_total_mib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "reconciler": reconciler.stdout.strip() or reconciler.stderr.strip()[-200:],
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "skopeo": proc.tool_version(["skopeo", "--version"]),
        "registry": proc.tool_version([REGISTRY_BIN, "--version"]),
        "wrk": proc.tool_version(["wrk", "-v"]),
        "curl": proc.tool_version(["curl", "--version"]),
        "loadavg_start": loadavg(),
    }
