"""regsync (regclient's declarative sync, a Go binary) as a peer for the cold-sync, refresh
and latency sections.

It is not a Debian package: the harness looks for it in ``$BENCH_PEERS_BIN`` (default
``/work/shared/peers/bin``, the peers built for this machine; see its README). Where it is
missing, as on a fresh clone, the sections leave the regsync rows out and record why in
``regsync_note``: nothing fails, and the suite's smoke test does not need it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import proc

if TYPE_CHECKING:
    from bench.harness import Context

PEERS_BIN = Path(os.environ.get("BENCH_PEERS_BIN", "/work/shared/peers/bin"))


def binary() -> Path | None:
    path = PEERS_BIN / "regsync"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def missing_note() -> str:
    return (f"regsync rows left out: no executable {PEERS_BIN / 'regsync'} (set BENCH_PEERS_BIN to a folder "
            "with regclient's regsync to measure it)")


def write_config(path: Path, source_host: str, target_host: str, repos: list[str]) -> Path:
    """One ``type: repository`` entry per repository, ``SOURCE/REPO`` -> ``TARGET/mirror/REPO``
    (the layout ``skopeo sync --dest docker`` uses), plain HTTP on both sides."""
    lines = ["version: 1", "creds:", f'  - {{registry: "{source_host}", tls: disabled}}',
             f'  - {{registry: "{target_host}", tls: disabled}}', "sync:"]
    lines += [f'  - {{source: "{source_host}/{r}", target: "{target_host}/mirror/{r}", type: repository}}'
              for r in repos]
    path.write_text("\n".join(lines) + "\n")
    return path


def once(config: Path) -> proc.Run:
    exe = binary()
    assert exe is not None, "call binary() first"
    return proc.run([str(exe), "once", "-c", str(config), "-v", "warn"])


def add_rerun(ctx: Context, fns: dict[str, Callable[[], Any]], out: dict[str, Any], source_host: str,
              config_name: str) -> None:
    """Add ``regsync`` (a re-run from ``source_host`` into the registry the cold-sync
    section's regsync filled) to the measured ``fns``, or say in ``out`` why there is none."""
    if "regsync_dst" in ctx.shared:
        cfg = write_config(ctx.work / config_name, source_host, ctx.shared["regsync_dst"].host, list(ctx.fixtures.repos))
        fns["regsync"] = lambda: once(cfg)
    else:
        out["regsync_note"] = missing_note() if binary() is None else \
            "regsync rows left out: the cold-sync section did not leave regsync's registry"
