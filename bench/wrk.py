"""Load generators. wrk (Debian ``wrk``) for GETs: a Lua script cycles through a list of paths
with a fixed method and Accept header, and prints wrk's summary as one JSON line, so the
same script, threads, connections and duration hit every server under test. ab (Debian
``apache2-utils``) for HEADs, which wrk cannot do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import proc
from bench.fixtures import ACCEPT

SCRIPT = """\
local paths = {%(paths)s}
local method = "%(method)s"
local headers = {["Accept"] = "%(accept)s"}
local n = 0
request = function()
  n = n + 1
  return wrk.format(method, paths[(n %% #paths) + 1], headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %%d, "bytes": %%d, "duration_us": %%d, "errors_status": %%d, ' ..
    '"errors_connect": %%d, "errors_read": %%d, "errors_write": %%d, "errors_timeout": %%d, ' ..
    '"latency_p50_us": %%d, "latency_p99_us": %%d}\\n',
    summary.requests, summary.bytes, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def load(url: str, paths: list[str], method: str, script: Path, *, threads: int, connections: int,
         seconds: int) -> dict[str, Any]:
    script.write_text(SCRIPT % {"paths": ", ".join(json.dumps(p) for p in paths), "method": method,
                                "accept": ACCEPT})
    r = proc.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                  "-s", str(script), url], timeout=seconds + 60).check()
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{r.stdout[-1000:]}\n{r.stderr[-1000:]}")
    s = json.loads(line.removeprefix("BENCH_JSON "))
    secs = s["duration_us"] / 1e6
    errors = s["errors_status"] + s["errors_connect"] + s["errors_read"] + s["errors_write"] + s["errors_timeout"]
    return {"requests": s["requests"], "errors": errors, "seconds": round(secs, 2),
            "requests_per_s": round(s["requests"] / secs, 1), "mb_per_s": round(s["bytes"] / secs / 1e6, 1),
            "latency_p50_ms": round(s["latency_p50_us"] / 1000, 2),
            "latency_p99_ms": round(s["latency_p99_us"] / 1000, 2), "client_cpu_s": round(r.cpu_s, 2)}


def head_load(url: str, path: str, *, connections: int, seconds: int) -> dict[str, Any]:
    """HEAD load with ab (apache2-utils): wrk cannot do HEAD (it waits for the body that a
    HEAD response announces in Content-Length but never sends). One path, keep-alive."""
    r = proc.run(["ab", "-q", "-i", "-k", "-c", str(connections), "-t", str(seconds), "-n", "10000000",
                  "-s", "10", "-H", f"Accept: {ACCEPT}", url + path], timeout=seconds + 60)
    facts: dict[str, str] = {}
    for ln in r.stdout.splitlines():
        if ":" in ln:
            k, _, v = ln.partition(":")
            facts[k.strip()] = v.strip()
    if "Requests per second" not in facts:
        raise RuntimeError(f"ab printed no summary (exit {r.returncode}):\n{r.stdout[-1000:]}\n{r.stderr[-1000:]}")
    done = int(facts["Complete requests"])
    errors = int(facts.get("Failed requests", "0").split()[0]) + int(facts.get("Non-2xx responses", "0"))
    return {"requests": done, "errors": errors, "seconds": float(facts["Time taken for tests"].split()[0]),
            "requests_per_s": float(facts["Requests per second"].split()[0]), "client_cpu_s": round(r.cpu_s, 2),
            "keep_alive_requests": int(facts.get("Keep-Alive requests", "0"))}
