"""Benchmark: throughput of one limiter group shared by several processes.

The load of tests/test_limiter_procs.py (harness/limiter_load.py), which
checks only the safety side (no window holds more than the limit plus the burst):
threads reserve in a loop against one group of 1,200 RPM (20 calls/s, a 0.5 s bucket of
10) and 240,000 ITPM (4,000 input tokens/s, calls of 10-400 tokens), each sleeping its
wait as a worker does, against a private redis-server. Two shapes, rounds alternating in
the same run so both see the same machine:

- ``1x12``: one process, 12 threads (the baseline: nothing shared between processes);
- ``3x4``: three processes, 4 threads each (the test's shape).

Utilisation of a dimension = what was admitted / what its limit allows over the span
of the starts handed out (rate x span + bucket); the binding dimension is the fuller
one. Target: the floor
the test used to have, 0.8 of the binding limit, for ``3x4``; and close to ``1x12``.

    .venv/bin/python bench/limiter_procs.py [--seconds 5] [--rounds 3] [--no-docs]

Writes its section of docs/benchmarks.md between the limiter-procs markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from report import machine, markers, write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentjobs.contrib.testing import RedisServer  # noqa: E402
from harness.limiter_load import BURST_S, ITPM, RPM, max_in_window  # noqa: E402

REQ_RATE, TOKEN_RATE = RPM / 60, ITPM / 60  # per second
REQ_BUCKET, TOKEN_BUCKET = REQ_RATE * BURST_S, TOKEN_RATE * BURST_S
SHAPES = {"1x12": (1, 12), "3x4": (3, 4)}
TARGET = 0.8


def run_shape(url: str, procs: int, threads: int, seconds: float) -> dict[str, Any]:
    key = f"sk-bench-{uuid.uuid4().hex}"  # fresh buckets for this round
    args = [url, repr(seconds), str(threads), key]
    children = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "harness" / "limiter_load.py"), *args, "--go"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    for child in children:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("a child did not start")
    start_at = time.time() + 0.2  # together, whatever each one's start-up took
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start_at!r}\n")
        child.stdin.flush()
    rows: list[list[float]] = []
    for child in children:
        out, _ = child.communicate(timeout=seconds + 60)
        if child.returncode != 0:
            raise RuntimeError(f"child exited {child.returncode}")
        rows += json.loads(out)
    rows.sort()
    times = [r[0] for r in rows]
    tokens = [float(r[1]) for r in rows]
    # Over the span of the starts handed out: a call booked near the end starts up to
    # the longest wait (2 s) after it.
    span = (times[-1] - times[0]) / 1000.0 if rows else seconds
    req_util = len(rows) / (REQ_RATE * span + REQ_BUCKET)
    tok_util = sum(tokens) / (TOKEN_RATE * span + TOKEN_BUCKET)
    # Safety, as the test checks it: the fullest 1 s window against limit + burst.
    worst = max(
        max_in_window(times, [1.0] * len(rows), 1000.0) / (REQ_BUCKET + REQ_RATE + 1),
        max_in_window(times, tokens, 1000.0) / (TOKEN_BUCKET + TOKEN_RATE + 400),
    )
    return {
        "calls": len(rows),
        "calls_per_s": len(rows) / span,
        "requests": req_util,
        "tokens": tok_util,
        "binding": max(req_util, tok_util),
        "window": worst,
    }


def commit() -> str:
    """The checked-out commit, and whether the code measured differs from it."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        measured = ["agentjobs/limiter", "harness/limiter_load.py", __file__]
        diff = ["git", "diff", "--quiet", "HEAD", "--", *measured]
        dirty = subprocess.run(diff, cwd=ROOT).returncode != 0
    except OSError:
        return "unknown"
    return (sha or "unknown") + (" with uncommitted changes to the code measured" if dirty else "")


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median binding utilisation, and the worst window of all."""
    ordered = sorted(runs, key=lambda r: r["binding"])
    mid = dict(ordered[len(ordered) // 2])
    mid["window"] = max(r["window"] for r in runs)
    mid["spread"] = (ordered[0]["binding"], ordered[-1]["binding"])
    return mid


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace, elapsed: float) -> str:
    start, end = markers("limiter-procs")
    base, shared = results["1x12"], results["3x4"]
    ratio = shared["binding"] / base["binding"]
    met = "meets" if shared["binding"] >= TARGET else "misses"
    lines = [
        start,
        "## Limiter throughput across processes",
        "",
        f"Command: `.venv/bin/python bench/limiter_procs.py --seconds {args.seconds:g} "
        f"--rounds {args.rounds}`",
        f"Date: {datetime.date.today()}; commit {commit()}; machine: {machine()}; "
        f"whole run {elapsed:.0f} s.",
        f"Setup: one group of {RPM:,} RPM ({REQ_RATE:g} calls/s, bucket {REQ_BUCKET:g}) and "
        f"{ITPM:,} ITPM ({TOKEN_RATE:,.0f} tokens/s, bucket {TOKEN_BUCKET:,.0f}), calls of "
        "10-400 input tokens; threads reserve in a loop and sleep their waits (the load of "
        "tests/test_limiter_procs.py) against a private redis-server, all starting "
        f"together, {args.seconds:g} s per round; rounds alternate the shapes; median round "
        "of each. Utilisation = admitted / (rate x span of the starts + bucket).",
        "",
        "| shape | calls/s | requests | input tokens | binding | rounds (binding) "
        "| fullest 1 s window / bound |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, r in results.items():
        label = f"{name} (baseline)" if name == "1x12" else name
        lo, hi = r["spread"]
        lines.append(
            f"| {label} | {r['calls_per_s']:.1f} | {r['requests']:.3f} | {r['tokens']:.3f} "
            f"| {r['binding']:.3f} | {lo:.3f}-{hi:.3f} | {r['window']:.2f} |"
        )
    lines += [
        "",
        f"Ratio 3x4 / 1x12 (binding): **{ratio:.2f}**. Target: >= {TARGET} of the binding "
        f"limit for 3x4 (the floor tests/test_limiter_procs.py used to assert): this run "
        f"{met} it. A window / bound above 1.00 would break the limit (the test's safety "
        "check).",
        "Figures from one run on a machine shared with other work: a loaded machine "
        "lowers both shapes (threads wake late), which is why this is a benchmark and "
        "not a test. The floor failed in the test (36 calls of 45.6 in 3 s) mostly "
        "because each child's first call loaded the settings, and with them the retry "
        "policies and the anthropic SDK, inside its 3 s: seconds on a loaded machine "
        "(12-43 calls in three runs here). The test and this benchmark now load them "
        "before the threads start (the test then saw 74-84 calls).",
        end,
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="length of one round")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each shape")
    p.add_argument("--no-docs", action="store_true", help="print only")
    args = p.parse_args()
    t0 = time.monotonic()
    server = RedisServer().start()
    try:
        url = f"{server.url}/1"
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SHAPES}
        for i in range(args.rounds):
            for name, (procs, threads) in SHAPES.items():
                r = run_shape(url, procs, threads, args.seconds)
                runs[name].append(r)
                print(
                    f"round {i + 1} {name}: {r['calls']} calls, binding {r['binding']:.3f}, "
                    f"window {r['window']:.2f}",
                    flush=True,
                )
    finally:
        server.cleanup()
    results = {name: median_run(rs) for name, rs in runs.items()}
    section = render(results, args, time.monotonic() - t0)
    print(section)
    if not args.no_docs:
        start, end = markers("limiter-procs")
        write_section(section, start, end)


if __name__ == "__main__":
    main()
