"""A load on one rate-limit group from several processes: what tests/test_limiter_procs.py
checks for safety and bench/limiter_procs.py measures for throughput, the same loop.

Each process runs :func:`hammer`: threads reserve in a loop for some seconds (calls of
10-400 input tokens), each sleeping its wait as a worker does, against one group of
``rpm`` / ``itpm`` with a ``burst_s`` bucket, and record every admitted call's start
(Redis time, ms) and input tokens. As a child process::

    python harness/limiter_load.py URL SECONDS THREADS KEY [--go]

prints the rows as one JSON list; with ``--go`` it first prints ``ready`` and waits for
a start time (Unix seconds) on stdin, so that children started one by one on a loaded
machine still contend from the same moment.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Sequence

import redis

from agentjobs.limiter.gcra import Limiter, fingerprint
from agentjobs.settings import GroupLimits, get_settings

#: The group's limits: 20 calls/s (a bucket of 10), 4,000 input tokens/s (of 2,000).
RPM, ITPM, BURST_S = 1200, 240_000, 0.5


def hammer(
    lim: Limiter, seconds: float, threads: int, start_at: float | None = None
) -> list[list[float]]:
    """[start_ms, input_tokens] of every call admitted by ``threads`` threads reserving
    on group ``haiku`` from ``start_at`` (now when None) for ``seconds``."""
    begin = time.time() if start_at is None else start_at
    starts: list[list[float]] = []
    lock = threading.Lock()

    def run() -> None:
        end = begin + seconds
        while time.time() < end:
            res = lim.acquire("haiku", random.randint(10, 400), 200, max_wait_s=2.0)
            if not res.admitted:
                time.sleep(0.05)
                continue
            time.sleep(res.wait_s)
            lim.settle(res, input_tokens=res.input_tokens, output_tokens=random.randint(0, 200))
            with lock:
                starts.append([res.start_ms, res.input_tokens])

    time.sleep(max(0.0, begin - time.time()))
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return starts


def limiter(url: str, key: str) -> Limiter:
    """The limiter of API key ``key`` on the Redis at ``url``, with this module's limits."""
    limits = GroupLimits(rpm=RPM, itpm=ITPM, otpm=600_000, concurrency=99)
    return Limiter(
        redis.Redis.from_url(url),
        key_fingerprint=fingerprint(key),
        limits=lambda g: limits,
        burst_s=BURST_S,
    )


def max_in_window(times: Sequence[float], weights: Sequence[float], window_ms: float) -> float:
    """The largest sum of ``weights`` whose ``times`` (sorted, ms) fit in one window."""
    best, j, total = 0.0, 0, 0.0
    for i, t in enumerate(times):
        total += weights[i]
        while times[j] < t - window_ms + 1e-6:
            total -= weights[j]
            j += 1
        best = max(best, total)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="harness/limiter_load.py")
    parser.add_argument("url")
    parser.add_argument("seconds", type=float)
    parser.add_argument("threads", type=int)
    parser.add_argument("key", help="an API key name: fresh buckets for a fresh one")
    parser.add_argument("--go", action="store_true", help="print ready, read the start time")
    args = parser.parse_args(argv)
    lim = limiter(args.url, args.key)
    # The first call would load the settings, and with them the retry policies and the
    # anthropic SDK (seconds on a loaded machine): load them before the start, so the
    # threads contend.
    get_settings()
    lim.redis.ping()
    start_at = None
    if args.go:
        print("ready", flush=True)
        start_at = float(sys.stdin.readline())
    print(json.dumps(hammer(lim, args.seconds, args.threads, start_at)))


if __name__ == "__main__":
    main()
