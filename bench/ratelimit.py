"""Benchmark: the global limiter against Celery's rate_limit and plain retry-on-429.

Real parts only: a private redis-server (broker, state store, results), the simulator
as a process with tight limits and a 2-second burst, and for each family (Haiku,
Sonnet) two `agentjobs worker` processes. Tasks are offered open-loop at 1.25x the
binding limit, so a good system runs at the ceiling. Each scenario runs three ways in
the same invocation:

- ``agentjobs``: the global limiter (the default);
- ``celery_rate_limit``: limiter off, Celery's per-worker ``rate_limit`` set (remote
  control, as an operator would) to the binding limit / number of workers, knowing
  the average tokens per call;
- ``retry_on_429``: limiter off, no rate limit; 429s retried after ``retry-after``.

Scenarios: ``requests`` (RPM-bound), ``input`` (ITPM-bound, prompts of 50-4,000
tokens), ``output`` (OTPM-bound, answers of 50-400 tokens), ``shared`` (RPM-bound while
another client of the same key sends 30% of the limit and retries its own 429s),
``tools`` (ITPM-bound, an agent's steps: 2-12 large tool definitions and an image in half
the calls, so most input is tools and images, not text). The simulator answers after
its median latency whatever the answer's length (``--output-tokens-per-s 0``): what is
measured is the limiter.

Figures come from the simulator's request log: utilisation of the binding limit over
the steady-state window (after ``--warmup`` seconds, for ``--duration`` seconds; a
limit of the requests is the sum of both families) and the share of our requests answered
429 over the whole run, warm-up included.

    .venv/bin/python bench/ratelimit.py [--duration 45] [--warmup 10]
        [--scenarios requests,input,output,shared,tools] [--modes agentjobs,...] [--no-docs]

Writes its section of docs/benchmarks.md between the ratelimit markers.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import math
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from report import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:ratelimit:start -->", "<!-- bench:ratelimit:end -->"

FAMILIES = ("haiku", "sonnet")
#: Models of the other client in the shared scenario: same groups, told apart in the log.
OTHER_MODELS = {"haiku": "claude-haiku-4-5-20251001", "sonnet": "claude-sonnet-4-5"}
OUR_MODELS = {"haiku": "claude-haiku-4-5", "sonnet": "claude-sonnet-4-6"}
WORKERS_PER_FAMILY = 2
THREADS = 16
OVERLOAD = 1.25
BURST_S = 2.0
HIGH = 100_000_000
MODES = ("agentjobs", "celery_rate_limit", "retry_on_429")
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]


@dataclass
class Scenario:
    name: str
    binding: str  # rpm, itpm or otpm
    rpm: int = HIGH
    itpm: int = HIGH
    otpm: int = HIGH
    other_share: float = 0.0
    #: mean tokens of the binding dimension per call (1 for requests)
    mean_units: float = 1.0
    note: str = ""

    @property
    def limit(self) -> int:
        return int(getattr(self, self.binding))

    def calls_per_s(self) -> float:
        return self.limit / 60.0 / self.mean_units


def _input_tokens() -> int:
    return int(math.exp(random.uniform(math.log(50), math.log(4000))))  # log-uniform


_IN_MEAN = (4000 - 50) / math.log(4000 / 50)


def _png(width: int, height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = zlib.compress(b"".join(b"\x00" + b"\x00" * width for _ in range(height)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    return base64.b64encode(raw).decode()


#: The tools scenario's images (an agent's screenshots): about 100 to 1,600 tokens each.
_IMAGES = [_png(w, h) for w, h in ((300, 250), (640, 480), (1000, 750), (1280, 960))]


def _tool(i: int) -> dict[str, Any]:
    """A large tool definition: ~150-600 tokens of description and schema."""
    words = " ".join(random.choices(WORDS, k=random.randint(60, 320)))
    props = {f"arg_{j}": {"type": "string", "description": f"argument {j}"} for j in range(4)}
    return {
        "name": f"tool_{i}",
        "description": words,
        "input_schema": {"type": "object", "properties": props},
    }


def _tools_call(tag: str) -> dict[str, Any]:
    """An agent's step: 2-12 large tool definitions, an image in half the calls."""
    content: list[dict[str, Any]] = [{"type": "text", "text": f"{tag} look at this and act"}]
    if random.random() < 0.5:
        data = random.choice(_IMAGES)
        content.append(
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
        )
    tools = [_tool(i) for i in range(random.randint(2, 12))]
    return {"messages": [{"role": "user", "content": content}], "tools": tools, "max_tokens": 64}


def _tools_mean_input() -> float:
    """Mean input tokens of a tools call, as the simulator counts them (its own code,
    over a fixed sample), so the offer is 1.25x the limit and not a guess."""
    from agentjobs.simulator import validation

    state = random.getstate()
    random.seed(11)
    total = 0
    n = 400
    for i in range(n):
        body = {"model": OUR_MODELS["haiku"], **_tools_call(f"[mean {i}]")}
        total += validation.parse(body, with_cache=False).input_tokens
    random.setstate(state)
    return total / n


SCENARIOS = {
    "requests": Scenario("requests", "rpm", rpm=600, note="600 RPM, short prompts"),
    "input": Scenario(
        "input", "itpm", itpm=300_000, mean_units=_IN_MEAN + 8, note="300k ITPM, 50-4,000 tokens"
    ),
    "output": Scenario("output", "otpm", otpm=60_000, mean_units=225, note="60k OTPM, 50-400"),
    "shared": Scenario(
        "shared", "rpm", rpm=600, other_share=0.3, note="600 RPM, other client sends 30%"
    ),
    "tools": Scenario(
        "tools",
        "itpm",
        itpm=300_000,
        note="300k ITPM, 2-12 large tool definitions, an image in half the calls",
    ),
}


def call_for(scn: Scenario, tag: str) -> dict[str, Any]:
    """The kwargs of one unique call of ``scn`` (model aside)."""
    if scn.name == "tools":
        return _tools_call(tag)
    if scn.binding == "itpm":
        chars = 4 * _input_tokens()
        text = " ".join(random.choices(WORDS, k=chars // 5 + 1))[:chars]
        return {"prompt": f"{tag} {text}", "max_tokens": 64}
    if scn.binding == "otpm":
        prompt = f"{tag} write [[sim:output_tokens={random.randint(50, 400)}]]"
        return {"prompt": prompt, "max_tokens": 512}
    return {"prompt": f"{tag} Summarise the plot of Hamlet in two sentences.", "max_tokens": 300}


@dataclass
class Run:
    scenario: str
    mode: str
    by_family: dict[str, dict[str, float]] = field(default_factory=dict)
    other_ok_share: float = 0.0
    requests: int = 0
    mean_wait_ms: float | None = None

    @property
    def utilisation(self) -> float:
        return min(f["util"] for f in self.by_family.values())

    @property
    def share_429(self) -> float:
        total = sum(f["ours"] for f in self.by_family.values())
        return sum(f["r429"] for f in self.by_family.values()) / max(1, total)


def run_one(scn: Scenario, mode: str, args: argparse.Namespace, redis_url: str) -> Run:
    from agentjobs.contrib.testing import SimProcess, WorkerProcess

    work = Path(tempfile.mkdtemp(prefix=f"bench-ratelimit-{scn.name}-{mode}-"))
    log_path = work / "sim.jsonl"
    # Output unpaced: a call takes the median latency whatever its length, as these
    # scenarios were designed (the limiter's figures, not the output speed, are measured;
    # the calls are streamed all the same).
    flags = ["--latency-median-ms", str(args.latency_ms), "--burst-s", str(BURST_S)]
    flags += ["--output-tokens-per-s", "0"]
    flags += ["--rpm", str(scn.rpm), "--itpm", str(scn.itpm), "--otpm", str(scn.otpm)]
    flags += ["--seed", "7", "--log", str(log_path)]
    sim = SimProcess(*flags, log_dir=str(work)).start()
    api_key = f"sk-bench-{uuid.uuid4().hex[:8]}"  # fresh limiter state per run
    env = {
        "AGENTJOBS_BROKER_URL": f"{redis_url}/0",
        "AGENTJOBS_REDIS_URL": f"{redis_url}/1",
        "AGENTJOBS_RESULT_BACKEND": f"{redis_url}/2",
        "AGENTJOBS_RESULT_TTL_S": "600",
        "AGENTJOBS_CACHE_DEFAULT": "off",
        "AGENTJOBS_LIMITER_ENABLED": "true" if mode == "agentjobs" else "false",
        "AGENTJOBS_LIMITER_BURST_S": str(BURST_S),
        "ANTHROPIC_BASE_URL": sim.base_url,
        "ANTHROPIC_API_KEY": api_key,
    }
    for fam in FAMILIES:
        for dim in ("rpm", "itpm", "otpm"):
            env[f"AGENTJOBS_LIMIT_{fam.upper()}_{dim.upper()}"] = str(getattr(scn, dim))
    os.environ.update(env)
    from agentjobs import app
    from agentjobs.settings import reset_settings
    from agentjobs.worker import tasks

    reset_settings()
    workers = [
        WorkerProcess(fam, env, ("-c", str(THREADS)), name=f"{fam}{i}-{mode}", log_dir=str(work))
        for fam in FAMILIES
        for i in range(WORKERS_PER_FAMILY)
    ]
    for w in workers:
        w.launch()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        for w in workers:
            w.wait_ready(60)
        if mode == "celery_rate_limit":
            per_worker = scn.calls_per_s() * (1 - scn.other_share) / WORKERS_PER_FAMILY
            replies = app.control.rate_limit(
                tasks.TASK_NAME, f"{per_worker * 60:.2f}/m", reply=True, timeout=5
            )
            if len(replies) < len(workers):
                raise RuntimeError(f"rate_limit reached {len(replies)} of {len(workers)} workers")
        # Offer a little past the window: the first answers come a moment after the
        # first offer, and the window is counted from them.
        t_end = time.monotonic() + args.warmup + args.duration + 3.0
        rate = scn.calls_per_s() * OVERLOAD
        for fam in FAMILIES:
            threads.append(
                threading.Thread(target=_offer, args=(tasks, scn, fam, rate, t_end, stop))
            )
            if scn.other_share:
                other = scn.calls_per_s() * scn.other_share
                threads.append(
                    threading.Thread(
                        target=_other_client, args=(sim.base_url, fam, other, t_end, stop)
                    )
                )
        for t in threads:
            t.start()
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(args.progress_s)
            if args.verbose and mode == "agentjobs":
                _progress()
        for t in threads:
            t.join()
        mean_wait = None
        if mode == "agentjobs":
            mean_wait = _mean_wait(api_key)
    finally:
        stop.set()
        import redis

        redis.Redis.from_url(f"{redis_url}/0").delete(*(f"claude.{f}" for f in FAMILIES))
        for w in workers:
            w.stop(timeout=10)
        sim.stop()
    return _measure(scn, mode, log_path, args, mean_wait)


def _offer(tasks: Any, scn: Scenario, fam: str, rate: float, t_end: float, stop: Any) -> None:
    """Submit calls open-loop at ``rate`` per second until ``t_end``."""
    t0 = time.monotonic()
    i = 0
    while not stop.is_set():
        due = t0 + i / rate
        now = time.monotonic()
        if due > t_end:
            break
        if due > now:
            time.sleep(due - now)
        call = call_for(scn, f"[{fam} {i} {uuid.uuid4().hex[:6]}]")
        tasks.complete.apply_async(kwargs={**call, "model": fam})
        i += 1
    print(f"  offered {fam}: {i} calls in {time.monotonic() - t0:.1f}s", flush=True)


def _other_client(base_url: str, fam: str, rate: float, t_end: float, stop: Any) -> None:
    """Another application on the same key: ``rate`` calls/s, each retried on 429."""
    try:  # anthropic >= 2 brings httpx2
        import httpx2 as httpx
    except ImportError:
        import httpx  # type: ignore[no-redef]

    body = {"model": OTHER_MODELS[fam], "max_tokens": 100}
    headers = {"x-api-key": "other", "anthropic-version": "2023-06-01"}
    t0 = time.monotonic()
    n = 0

    def one(i: int) -> None:
        with httpx.Client(timeout=30) as http:
            for _ in range(10):
                if stop.is_set() or time.monotonic() > t_end:
                    return
                msg = {"role": "user", "content": f"other {fam} {i} {uuid.uuid4().hex[:6]}"}
                r = http.post(
                    f"{base_url}/v1/messages", json={**body, "messages": [msg]}, headers=headers
                )
                if r.status_code != 429:
                    return
                time.sleep(float(r.headers.get("retry-after", "1")))

    workers: list[threading.Thread] = []
    while not stop.is_set():
        due = t0 + n / rate
        if due > t_end:
            break
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        t = threading.Thread(target=one, args=(n,), daemon=True)
        t.start()
        workers.append(t)
        n += 1
    for t in workers:
        t.join(timeout=35)


def _progress() -> None:
    from agentjobs.limiter.admission import get_limiter
    from agentjobs.settings import reset_settings

    reset_settings()
    for fam in FAMILIES:
        snap = get_limiter().snapshot(fam)
        dims = " ".join(
            f"{d}={v['available']:.0f}/{v['capacity']:.0f}" for d, v in snap["dimensions"].items()
        )
        print(
            f"    {fam}: admitted {snap['admitted']} {dims} pull-backs {snap['pullbacks']} "
            f"429s {snap['rate_limited']} ratio {snap['input_ratio']:.3f} "
            f"out {snap['output_estimate']:.0f} leases {snap['leases']}",
            flush=True,
        )


def _mean_wait(api_key: str) -> float | None:
    from agentjobs.limiter.admission import get_limiter
    from agentjobs.settings import reset_settings

    reset_settings()
    waits = [get_limiter().snapshot(fam)["mean_wait_ms"] for fam in FAMILIES]
    return sum(waits) / len(waits)


def _measure(
    scn: Scenario, mode: str, log_path: Path, args: argparse.Namespace, wait: float | None
) -> Run:
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("path") == "/v1/messages"]
    run = Run(scn.name, mode, requests=len(rows), mean_wait_ms=wait)
    ours = [r for r in rows if r["model"] in OUR_MODELS.values()]
    t0 = min(_counted_at(scn, r) for r in ours)
    lo, hi = t0 + args.warmup, t0 + args.warmup + args.duration
    other_ok = 0.0
    for fam in FAMILIES:
        mine = [r for r in ours if r["model"] == OUR_MODELS[fam] and r["ts"] <= hi]
        others = [
            r for r in rows if r["model"] == OTHER_MODELS[fam] and lo <= _counted_at(scn, r) < hi
        ]
        window = [r for r in mine if lo <= _counted_at(scn, r) < hi and r["status"] == 200]
        used = sum(_units(scn, r) for r in window)
        used_other = sum(_units(scn, r) for r in others if r["status"] == 200)
        capacity = scn.limit / 60.0 * args.duration
        run.by_family[fam] = {
            "util": (used + used_other) / capacity,
            "ours_util": used / capacity,
            "ours": len(mine),
            "r429": sum(1 for r in mine if r["status"] == 429),
            "ok": sum(1 for r in mine if r["status"] == 200),
        }
        other_ok += used_other / capacity / len(FAMILIES)
    run.other_ok_share = other_ok
    return run


def _counted_at(scn: Scenario, r: dict[str, Any]) -> float:
    """When the server debited the call: requests and input on arrival (the log's
    ``ts`` is the answer's time, ``latency_ms`` after), output as it was generated."""
    if scn.binding == "otpm":
        return float(r["ts"])
    return float(r["ts"]) - float(r.get("latency_ms") or 0.0) / 1000.0


def _units(scn: Scenario, r: dict[str, Any]) -> float:
    if scn.binding == "itpm":
        return float(r["input_tokens"] + r["cache_creation_input_tokens"])
    if scn.binding == "otpm":
        return float(r["output_tokens"])
    return 1.0


def render(runs: list[Run], args: argparse.Namespace, elapsed: float) -> str:
    total_ok = sum(f["ok"] for r in runs for f in r.by_family.values())
    total = sum(r.requests for r in runs)
    lines = [
        START,
        "## Global rate limiter",
        "",
        f"Command: `.venv/bin/python bench/ratelimit.py --duration {args.duration:g} "
        f"--warmup {args.warmup:g}`",
        f"Date: {datetime.date.today()}; machine: {machine()}; whole run {elapsed / 60:.1f} min.",
        f"Setup: simulator process (burst {BURST_S:g} s, median latency {args.latency_ms:g} ms "
        f"whatever the answer's length, real-time OTPM), {WORKERS_PER_FAMILY} worker "
        f"processes x {THREADS} threads per family, 2 families (Haiku, Sonnet; each its "
        f"own limits), tasks offered at "
        f"{OVERLOAD:g}x the binding limit; utilisation over {args.duration:g} s after a "
        f"{args.warmup:g} s warm-up (lower of the two families); 429 share of all our "
        f"requests, warm-up included. {total:,} requests to the simulator, {total_ok:,} "
        f"answered to our workers.",
        "",
        "| scenario | binding limit | mode | utilisation | 429 share | requests | "
        "mean limiter wait ms |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        scn = SCENARIOS[r.scenario]
        util = f"{r.utilisation:.3f}"
        if scn.other_share:
            util += f" (ours {r.utilisation - r.other_ok_share:.3f})"
        wait = "" if r.mean_wait_ms is None else f"{r.mean_wait_ms:.0f}"
        ours = sum(f["ours"] for f in r.by_family.values())
        lines.append(
            f"| {r.scenario} | {scn.note} | {r.mode} | {util} | {r.share_429:.2%} | "
            f"{ours:,} | {wait} |"
        )
    lines += [
        "",
        "Targets (agentjobs rows): utilisation >= 0.95 and 429 share <= 1% in each "
        "single-client scenario; <= 3% 429s with another client taking 30% of the key "
        "(there utilisation counts both clients' answered calls, `ours` only ours).",
        "",
        "Modes: `agentjobs` is the global limiter with default settings (burst = the "
        "simulator's 2 s, headroom 0.5 s); `celery_rate_limit` turns the limiter off and "
        "sets Celery's per-worker `rate_limit` by remote control to the binding limit / "
        "2 workers (for token-bound scenarios converted with the true mean tokens per "
        "call); `retry_on_429` turns the limiter off and only retries 429s after "
        "`retry-after`. All modes retry 429s through agentjobs' retry policy. The mean "
        "limiter wait is mostly queueing: calls are offered faster than the limit. "
        "Figures vary between runs on this shared 2-core machine (load from other work); "
        "the limiter's rows are the most stable, the baselines' the least.",
        END,
    ]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    write_section(section, START, END, DOCS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=45.0, help="steady-state seconds")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds excluded at the start")
    p.add_argument("--latency-ms", type=float, default=400.0, help="simulator median latency")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--no-docs", action="store_true", help="print only")
    p.add_argument("--verbose", action="store_true", help="print the limiter state as it runs")
    p.add_argument("--progress-s", type=float, default=5.0, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()

    # The app reads its broker from the environment when first imported: point it at
    # a private redis-server before anything imports agentjobs.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://127.0.0.1:{port}"
    os.environ["AGENTJOBS_BROKER_URL"] = f"{url}/0"
    os.environ["AGENTJOBS_REDIS_URL"] = f"{url}/1"
    os.environ["AGENTJOBS_RESULT_BACKEND"] = f"{url}/2"
    from agentjobs.contrib.testing import RedisServer

    if "tools" in args.scenarios.split(","):
        SCENARIOS["tools"].mean_units = _tools_mean_input()
    random.seed(11)
    server = RedisServer(port=port).start()
    runs: list[Run] = []
    t0 = time.monotonic()
    try:
        for name in args.scenarios.split(","):
            for mode in args.modes.split(","):
                subprocess.run(
                    ["redis-cli", "-p", str(server.port), "flushall"],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                run = run_one(SCENARIOS[name], mode, args, server.url)
                runs.append(run)
                print(
                    f"{name:9} {mode:18} utilisation {run.utilisation:.3f} "
                    f"429 share {run.share_429:.2%} requests {run.requests} "
                    f"wait {run.mean_wait_ms}",
                    flush=True,
                )
    finally:
        server.cleanup()
    section = render(runs, args, time.monotonic() - t0)
    if args.json:
        print(json.dumps([r.__dict__ for r in runs], indent=1))
    print(section)
    if not args.no_docs:
        write_docs(section)


if __name__ == "__main__":
    main()
