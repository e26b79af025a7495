"""``make demo`` (``python -m agentjobs.cli.demo``): the whole system on one machine.

Starts what it needs and stops it again, also on Ctrl-C:

1. Redis: a private ``redis-server`` on a free port when one is installed, else a
   reachable Redis (``AGENTJOBS_DEMO_REDIS_URL``, default ``redis://127.0.0.1:6379``)
   using DBs 13-15 and key prefix ``agentjobs-demo``, so a shared DB 0 is never touched;
2. the simulator (``agentjobs sim``, time-scaled), unless ``ANTHROPIC_API_KEY`` is set;
3. one Haiku and one Sonnet worker (``agentjobs worker``, subprocesses);
4. a mixed batch from ``examples/prompts.jsonl`` through ``agentjobs.cli.jobfile`` (what
   ``agentjobs submit`` runs), then a summary and where each model's tasks ran.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from agentjobs.contrib.testing import WorkerProcess

if TYPE_CHECKING:
    from agentjobs.cli.jobfile import Item, Summary

#: Real seconds per simulated second: 800 ms median calls take ~200 ms, so the demo
#: shows a realistic latency spread and still finishes in seconds.
TIME_SCALE = 0.25
SIM_LATENCY_MEDIAN_MS = 800
#: With the real API the demo sends only this many requests unless --requests says more.
REAL_API_DEFAULT_REQUESTS = 10
DEMO_DBS = (13, 14, 15)

HOW_TO_GET_REDIS = """\
The demo needs Redis. Either install redis-server (the demo then starts a private one):
  Debian/Ubuntu: sudo apt-get install redis-server
  macOS:         brew install redis
or run one and point the demo at it:
  docker run -d -p 6379:6379 redis:7
  AGENTJOBS_DEMO_REDIS_URL=redis://127.0.0.1:6379 make demo"""


def _default_file() -> Path:
    here = Path(__file__).resolve().parents[1] / "examples" / "prompts.jsonl"
    return here if here.exists() else Path("examples/prompts.jsonl")


def _say(msg: str) -> None:
    click.echo(click.style("demo: ", fg="cyan") + msg, err=True)


def _redis(stack: contextlib.ExitStack) -> dict[str, str]:
    """Connection settings for a Redis only the demo uses."""
    import redis

    from agentjobs.contrib.testing import RedisServer

    if shutil.which("redis-server"):
        server = RedisServer()
        stack.callback(server.cleanup)
        server.start()
        _say(f"started a private redis-server on port {server.port}")
        return {
            "AGENTJOBS_BROKER_URL": f"{server.url}/0",
            "AGENTJOBS_REDIS_URL": f"{server.url}/1",
            "AGENTJOBS_RESULT_BACKEND": f"{server.url}/2",
        }
    url = os.environ.get("AGENTJOBS_DEMO_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        raise click.ClickException(
            f"redis-server is not installed and no Redis answers at {url}.\n{HOW_TO_GET_REDIS}"
        ) from None
    broker, state, results = DEMO_DBS
    _say(f"using the Redis at {url}, DBs {broker}-{results}, key prefix agentjobs-demo")
    return {
        "AGENTJOBS_BROKER_URL": f"{url}/{broker}",
        "AGENTJOBS_REDIS_URL": f"{url}/{state}",
        "AGENTJOBS_RESULT_BACKEND": f"{url}/{results}",
        "AGENTJOBS_KEY_PREFIX": "agentjobs-demo",
    }


def _simulator(stack: contextlib.ExitStack, log_dir: str) -> dict[str, str]:
    from agentjobs.contrib.testing import SimProcess

    sim = SimProcess(
        "--time-scale",
        str(TIME_SCALE),
        "--latency-median-ms",
        str(SIM_LATENCY_MEDIAN_MS),
        "--seed",
        "1",
        log_dir=log_dir,
    )
    stack.callback(sim.stop)
    sim.start()
    _say(
        f"started the simulator at {sim.base_url} (median latency {SIM_LATENCY_MEDIAN_MS} ms, "
        f"time scale {TIME_SCALE}); set ANTHROPIC_API_KEY to use the real API"
    )
    return {"ANTHROPIC_BASE_URL": sim.base_url}


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=_default_file,
    help="Requests, one JSON object per line [default: examples/prompts.jsonl].",
)
@click.option(
    "--requests",
    "limit",
    type=click.IntRange(min=1),
    default=None,
    help=f"Send only the first N lines [default: all; {REAL_API_DEFAULT_REQUESTS} with a "
    "real ANTHROPIC_API_KEY].",
)
@click.option("-c", "--concurrency", default=16, show_default=True, help="Threads per worker.")
def main(path: Path, limit: int | None, concurrency: int) -> None:
    """Run a mixed Haiku/Sonnet batch through real workers, then stop everything."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    log_dir = tempfile.mkdtemp(prefix="agentjobs-demo-")
    real_api = bool(os.environ.get("ANTHROPIC_API_KEY"))
    if real_api and limit is None:
        limit = REAL_API_DEFAULT_REQUESTS
    t0 = time.monotonic()
    workers: list[WorkerProcess] = []
    try:
        with contextlib.ExitStack() as stack:
            env = _redis(stack)
            if real_api:
                _say(f"ANTHROPIC_API_KEY is set: using the real API, {limit} requests")
            else:
                env.update(_simulator(stack, log_dir))
            os.environ.update(env)
            from agentjobs.settings import reset_settings

            reset_settings()
            summary, items = _run(stack, path, limit, concurrency, log_dir, workers)
            click.echo(summary.text())
            _report_routing(items)
            _say(f"stopping everything the demo started (logs in {log_dir})")
    except KeyboardInterrupt:
        _say("interrupted: stopped everything the demo started")
        sys.exit(130)
    except click.ClickException:
        raise
    except Exception as exc:
        for w in workers:
            click.echo(f"--- {w.name} log (tail) ---\n{w.log()[-3000:]}", err=True)
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    _say(f"done in {time.monotonic() - t0:.1f} s")
    failed = summary.total - summary.done
    sys.exit(1 if failed else 0)


def _run(
    stack: contextlib.ExitStack,
    path: Path,
    limit: int | None,
    concurrency: int,
    log_dir: str,
    workers: list[WorkerProcess],
) -> tuple[Summary, list[Item]]:
    from agentjobs.cli.jobfile import read_requests, run_batch
    from agentjobs.worker.app import app

    if app.conf.broker_url != os.environ["AGENTJOBS_BROKER_URL"]:
        raise RuntimeError("agentjobs was configured before the demo set its broker")
    workers += [
        WorkerProcess(
            family, env={}, args=("-c", str(concurrency)), name=f"demo-{family}", log_dir=log_dir
        )
        for family in ("haiku", "sonnet")
    ]
    for w in workers:
        stack.callback(w.stop, 15.0)  # warm shutdown, then SIGKILL
        w.launch()
    for w in workers:
        w.wait_ready()
    _say(f"workers up: {', '.join(w.name for w in workers)} ({concurrency} threads each)")
    with open(path, encoding="utf-8") as fh:
        items = read_requests(fh)
    if limit is not None:
        items = items[:limit]
    bad = [i for i in items if i.status == "INVALID"]
    if bad:
        raise RuntimeError(f"{path}: {len(bad)} invalid lines, first: line {bad[0].line}")
    _say(f"submitting {len(items)} requests from {path}")
    summary = run_batch(items, timeout=300.0, progress=True, label="demo")
    return summary, items


def _report_routing(items: list[Item]) -> None:
    """Show that each family's tasks ran on that family's worker, never elsewhere."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for item in items:
        if item.result:
            worker = str(item.result.get("worker", "?")).split("@")[0]
            seen[(item.result["model"], item.result["queue"], worker)] += 1
    for (model, queue, worker), n in sorted(seen.items()):
        click.echo(f"  {n:4d} x {model:<20} on {queue:<14} ran on {worker}")
    if failed := [i for i in items if i.status != "SUCCESS"]:
        first = failed[0]
        click.echo(f"first failure: line {first.line}: {first.error}")


if __name__ == "__main__":
    main()
