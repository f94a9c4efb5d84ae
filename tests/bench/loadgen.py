"""Load from a separate process: ``wrk`` (Debian's package) driven by small Lua scripts.

Every script counts non-2xx responses across wrk's threads and prints one JSON line
with the totals and latency percentiles, so each scenario is one wrk process whose
result is machine-readable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MARKER = "WRK-RESULT "

# Shared by every script: per-thread counters, summed in done().
_COMMON = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end
non2xx = 0
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"socket_errors":%d,"timeouts":%d,"non2xx":%d}\n', "MARKER",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write, e.timeout, bad))
end
""".replace('"MARKER"', json.dumps(MARKER))

_BEARER = r"""
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
"""

_POST_UNIQUE = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local tag = os.getenv("BENCH_TAG")
local counter = 0
function request()
  counter = counter + 1
  local body = string.format(
    '{"title":"Bench %s %d-%d","type":"olympiad","date":"2024-05-01","description":"load test"}',
    tag, thread_no, counter)
  return wrk.format(nil, nil, nil, body)
end
"""

_LOGIN = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
"""

SCRIPTS = {
    "get": _COMMON + _BEARER,
    "post": _COMMON + _BEARER + _POST_UNIQUE,
    "login": _COMMON + _LOGIN,
}


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # non-2xx responses + socket errors + timeouts

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    """wrk from Debian's packages, installed when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk from Debian's packages ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env,
                       stdout=subprocess.DEVNULL, timeout=300)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is required: apt-get install wrk (Debian/Ubuntu) and run again")
    return found


class Wrk:
    def __init__(self, workdir: Path) -> None:
        self.binary = ensure_wrk()
        self.workdir = workdir
        for name, text in SCRIPTS.items():
            (workdir / f"{name}.lua").write_text(text)

    def start(self, url: str, script: str, *, seconds: float, connections: int, threads: int = 1,
              timeout: float = 10.0, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start one wrk run in the background; ``collect`` waits for it (bounded)."""
        assert url.startswith("http://127.0.0.1:"), "load goes to this machine only"
        command = [self.binary, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                   "--timeout", f"{timeout:g}s", "-s", str(self.workdir / f"{script}.lua"), url]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})

    @staticmethod
    def collect(process: subprocess.Popen, seconds: float) -> Result:
        try:
            out, err = process.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise RuntimeError("wrk did not stop in time") from None
        for line in out.splitlines():
            if line.startswith(MARKER):
                data = json.loads(line[len(MARKER):])
                return Result(
                    requests=data["requests"], seconds=data["duration_us"] / 1e6,
                    p50_ms=data["p50_us"] / 1e3, p90_ms=data["p90_us"] / 1e3, p99_ms=data["p99_us"] / 1e3,
                    max_ms=data["max_us"] / 1e3,
                    errors=data["non2xx"] + data["socket_errors"] + data["timeouts"],
                )
        raise RuntimeError(f"wrk printed no result (exit {process.returncode}): {err.strip() or out.strip()}")

    def run(self, url: str, script: str, *, seconds: float, connections: int, **kw) -> Result:
        return self.collect(self.start(url, script, seconds=seconds, connections=connections, **kw), seconds)
