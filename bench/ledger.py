"""Submit cost of the submit ledger: ``complete.apply_async`` throughput, ledger on vs off.

A private redis-server (broker DB 0, state DB 1); no worker, the messages just queue.
Rounds alternate on/off in the same run so both see the same machine; the figure is
the median round of each and their ratio.

    .venv/bin/python bench/ledger.py [--n 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from agentjobs.contrib.testing import RedisServer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=3000, help="submits per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    server = RedisServer().start()
    try:
        os.environ["AGENTJOBS_BROKER_URL"] = f"{server.url}/0"
        os.environ["AGENTJOBS_REDIS_URL"] = f"{server.url}/1"
        os.environ["AGENTJOBS_RESULT_BACKEND"] = f"{server.url}/2"
        os.environ["AGENTJOBS_METRICS_ENABLED"] = "false"  # measure the ledger alone
        from agentjobs.reliability import ledger
        from agentjobs.settings import reset_settings
        from agentjobs.store import state_redis
        from agentjobs.worker.tasks import complete

        rates: dict[bool, list[float]] = {True: [], False: []}
        prompt = "Summarise the ledger benchmark in one sentence. " * 10  # ~500 bytes
        for _ in range(args.rounds):
            for on in (False, True):
                os.environ["AGENTJOBS_LEDGER_ENABLED"] = "true" if on else "false"
                reset_settings()
                complete.delay(prompt="warm up")
                t0 = time.perf_counter()
                for i in range(args.n):
                    complete.delay(prompt=f"{prompt} {i}")
                rates[on].append(args.n / (time.perf_counter() - t0))
                state_redis().flushdb()
                with complete.app.connection_for_write() as conn:
                    conn.default_channel.client.flushdb()
        assert ledger.size() == 0
        off, on = statistics.median(rates[False]), statistics.median(rates[True])
        print(f"submits/s, median of {args.rounds} rounds of {args.n} (prompt ~500 bytes):")
        print(f"  ledger off: {off:8.0f}/s   ({1e3 / off:.3f} ms per submit)")
        print(f"  ledger on:  {on:8.0f}/s   ({1e3 / on:.3f} ms per submit)")
        print(f"  on/off: {on / off:.2f}; cost {1e3 / on - 1e3 / off:.3f} ms per submit")
        print(f"nproc {os.cpu_count()}, python {sys.version.split()[0]}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
