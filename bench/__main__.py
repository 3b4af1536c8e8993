"""``python -m bench``: run the benchmark sections and write bench/results/<name>.json and
BENCHMARKS.md. Exit 0 when every section ran, 1 when any failed (targets missed do not
change the exit code: they are results, reported as MISS).

Examples::

    python -m bench                          # the full run (20-30 minutes)
    python -m bench --smoke --name smoke     # tiny parameters, ~1 minute
    python -m bench --sections cold_sync,serving --big-layer-size 64MiB
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import harness, machine, report
from bench.proc import REPO_ROOT
from bench.sections import ALL


def size(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "": 1}
    for u in ("KiB", "MiB", "GiB", ""):
        if text.endswith(u) and text[: len(text) - len(u)].isdigit():
            return int(text[: len(text) - len(u)]) * units[u]
    raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1048576, 64KiB, 1GiB)")


def scale(text: str) -> tuple[int, int]:
    repos, _, tags = text.partition("x")
    if not (repos.isdigit() and tags.isdigit()):
        raise argparse.ArgumentTypeError(f"not REPOSxTAGS: {text!r} (e.g. 1000x50)")
    return int(repos), int(tags)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny parameters (what the test suite runs)")
    ap.add_argument("--name", help="result name: bench/results/NAME.json (default: full, or smoke)")
    ap.add_argument("--sections", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--ours", choices=["apply", "sync"], help="cold sync by one apply of repos.yaml "
                    "(default) or one `reconciler sync` per repository")
    ap.add_argument("--repos", type=int)
    ap.add_argument("--tags", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--layer-size", type=size)
    ap.add_argument("--big-layer-size", type=size, help="layer of the memory section (default 1GiB)")
    ap.add_argument("--plan-scale", type=scale, action="append", help="REPOSxTAGS, repeatable (default "
                    "1000x50 and 10000x10)")
    ap.add_argument("--wrk-seconds", type=int)
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    ap.add_argument("--markdown", type=Path, help="where to write the table (default: BENCHMARKS.md at the "
                    "repository root for a full run, none for --smoke)")
    ap.add_argument("--work-root", type=Path, help="parent of the temporary work directory (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (stores, logs)")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    params = harness.Params.smoke() if a.smoke else harness.Params()
    overrides = {"repos": a.repos, "tags": a.tags, "layers": a.layers, "layer_size": a.layer_size,
                 "big_layer_size": a.big_layer_size, "wrk_seconds": a.wrk_seconds, "ours": a.ours,
                 "plan_scales": tuple(a.plan_scale) if a.plan_scale else None}
    params = replace(params, **{k: v for k, v in overrides.items() if v is not None})
    wanted = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in ALL]
    if unknown:
        print(f"error: unknown section(s) {unknown}; choose from {list(ALL)}", file=sys.stderr)
        return 2
    name = a.name or ("smoke" if a.smoke else "full")
    facts = machine.facts()
    result: dict[str, Any] = {"name": name, "machine": facts}
    result.update(harness.run(params, [(s, ALL[s]) for s in wanted], keep=a.keep, work_root=a.work_root))
    facts["loadavg_end"] = machine.loadavg()
    result["targets"] = report.evaluate(result)
    out = a.out_dir / f"{name}.json"
    report.write_json(result, out)
    md_path = a.markdown or (None if a.smoke else REPO_ROOT / "BENCHMARKS.md")
    md = report.markdown(result)
    if md_path:
        md_path.write_text(md)
    print(md)
    print(f"results: {out}" + (f", {md_path}" if md_path else ""))
    failed = [n for n, s in result["sections"].items() if s["status"] != "ok"]
    if failed:
        print(f"error: section(s) failed: {', '.join(failed)} (see the table above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
