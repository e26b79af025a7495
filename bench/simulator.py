"""Benchmark: requests per second the simulator serves at zero latency.

Later benchmarks drive agentjobs against the simulator, so the simulator must never be
their bottleneck (target: 1,500 req/s on a 2-core machine). Runs the simulator as a
process, loads it with wrk (one thread: a light generator that leaves the server its
core), and compares with a bare aiohttp handler measured the same way in the same run.

    .venv/bin/python bench/simulator.py [--duration 10] [--connections 32] [--no-docs]

Installs wrk with apt-get when missing and allowed; otherwise falls back to an aiohttp
client load generator (heavier, so its figures are lower bounds). Writes its section of
docs/benchmarks.md between the simulator markers and leaves the rest of the file alone.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from report import cpu_model, write_section

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:simulator:start -->", "<!-- bench:simulator:end -->"
TARGET_RPS = 1500

BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Summarise the plot of Hamlet in two sentences."}],
}
HEADERS = {
    "content-type": "application/json",
    "x-api-key": "bench",
    "anthropic-version": "2023-06-01",
}
# Limits far above what one machine can send, so every request is a 200 answer.
SIM_FLAGS = ["--latency-median-ms", "0", "--rpm", "1000000000", "--itpm", "1000000000000"]
SIM_FLAGS += ["--otpm", "1000000000000", "--seed", "1"]

BASELINE = """
import sys
from aiohttp import web
async def hello(request):
    await request.read()
    return web.json_response({"type": "message", "content": [{"type": "text", "text": "hi"}]})
app = web.Application()
app.router.add_post("/v1/messages", hello)
async def ready(app):
    print("listening on http://127.0.0.1:" + sys.argv[1], flush=True)
app.on_startup.append(ready)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, line.split()[-1]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ensure_wrk() -> str | None:
    path = shutil.which("wrk")
    if path or os.environ.get("BENCH_NO_INSTALL"):
        return path
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, check=False)
    return shutil.which("wrk")


def run_wrk(wrk: str, url: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\n')
        for k, v in HEADERS.items():
            script.write(f'wrk.headers["{k}"] = "{v}"\n')
        script.write(f"wrk.body = [[{json.dumps(BODY)}]]\n")
    try:
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name,
             url + "/v1/messages"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    return {
        "rps": rps,
        "requests": total,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "p50_ms": _ms(p50),
        "p99_ms": _ms(p99),
    }


def _ms(match: re.Match[str] | None) -> float:
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_aiohttp_client(url: str, seconds: int, connections: int) -> dict[str, float]:
    import aiohttp

    data = json.dumps(BODY).encode()
    counts = {"ok": 0, "bad": 0}

    async def worker(session: aiohttp.ClientSession, deadline: float) -> None:
        while time.monotonic() < deadline:
            async with session.post(url + "/v1/messages", data=data, headers=HEADERS) as r:
                await r.read()
                counts["ok" if r.status == 200 else "bad"] += 1

    async def main() -> float:
        conn = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=conn) as session:
            t0 = time.monotonic()
            deadline = t0 + seconds
            await asyncio.gather(*(worker(session, deadline) for _ in range(connections)))
            return time.monotonic() - t0

    elapsed = asyncio.run(main())
    total = counts["ok"] + counts["bad"]
    return {"rps": total / elapsed, "requests": total, "non_2xx": counts["bad"],
            "p50_ms": float("nan"), "p99_ms": float("nan")}  # fmt: skip


def measure(name: str, cmd: list[str], gen: str, args: argparse.Namespace) -> dict[str, float]:
    proc, url = start(cmd)
    try:

        def load(seconds: int) -> dict[str, float]:
            if gen == "aiohttp":
                return run_aiohttp_client(url, seconds, args.connections)
            return run_wrk(gen, url, seconds, args.connections)

        load(2)  # warm-up
        result = load(args.duration)
        if name.startswith("simulator"):
            with urllib.request.urlopen(url + "/_sim/stats") as r:
                result["server_ok"] = json.load(r)["ok"]
    finally:
        stop(proc)
    print(
        f"{name:32s} {result['rps']:9.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
        f"p99 {result['p99_ms']:.2f} ms  non-2xx {result['non_2xx']:.0f}",
        flush=True,
    )
    return result


def update_docs(section: str) -> None:
    write_section(f"{START}\n{section.rstrip()}\n{END}", START, END, DOCS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-docs", action="store_true", help="do not edit docs/benchmarks.md")
    args = parser.parse_args()

    gen = ensure_wrk() or "aiohttp"
    py = sys.executable
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        port = str(free_port())
        runs["baseline"] = measure(
            "baseline (bare aiohttp handler)", [py, "-c", BASELINE, port], gen, args
        )
        sim = [py, "-m", "agentjobs.simulator", "--port", "0", *SIM_FLAGS]
        runs["sim"] = measure("simulator", sim, gen, args)
        log = ["--log", os.path.join(tmp, "requests.jsonl")]
        runs["sim_log"] = measure("simulator + JSONL log", sim + log, gen, args)

    ratio = runs["sim"]["rps"] / runs["baseline"]["rps"]
    verdict = "meets" if runs["sim_log"]["rps"] >= TARGET_RPS else "MISSES"
    print(f"simulator / baseline = {ratio:.2f}; {verdict} the {TARGET_RPS} req/s target")

    gen_name = "wrk -t1" if gen != "aiohttp" else "aiohttp client (fallback)"
    rows = "\n".join(
        f"| {label} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
        f"{r['requests']:,.0f} | {r['non_2xx']:.0f} |"
        for label, r in (
            ("bare aiohttp handler (baseline)", runs["baseline"]),
            ("simulator, zero latency", runs["sim"]),
            ("simulator, zero latency, JSONL log on", runs["sim_log"]),
        )
    )
    section = f"""## Simulator throughput

Command: `.venv/bin/python bench/simulator.py --duration {args.duration} \
--connections {args.connections}`
Date: {datetime.date.today().isoformat()}; machine: {os.cpu_count()} CPUs (`nproc`), \
{cpu_model()}; Python {platform.python_version()}.
Load: {gen_name}, {args.connections} connections, {args.duration} s after a 2 s warm-up, \
one `POST /v1/messages` (Haiku, max_tokens 256) repeated; server and load generator on \
the same machine.

| server | req/s | p50 ms | p99 ms | requests | non-2xx |
|---|---:|---:|---:|---:|---:|
{rows}

Simulator / baseline: {ratio:.2f}. Target {TARGET_RPS:,} req/s: {verdict.lower()} \
({runs["sim_log"]["rps"] / TARGET_RPS:.1f}x with the log on). The simulator counted \
{runs["sim"].get("server_ok", 0):,.0f} 200 answers in its run (warm-up included).
Figures from one run on a machine shared with other work: repeated runs vary by tens of
percent (the JSONL-log row most), never near the target.
"""
    if not args.no_docs:
        update_docs(section)
        print(f"updated {DOCS.relative_to(ROOT)}")
    return 0 if verdict == "meets" else 1


if __name__ == "__main__":
    sys.exit(main())
