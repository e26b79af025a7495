"""What a core install of agentjobs (no extra) must do: run by scripts/core-install.sh
with the Python of a fresh venv that ``pip install .`` made, from outside the checkout.

- no optional library is installed (so what follows proves something), and agentjobs
  comes from that venv's site-packages;
- ``from agentjobs import complete; complete.delay(...)`` publishes to ``claude.haiku``
  and imports neither aiohttp, flower nor prometheus_client;
- a worker of that venv (``agentjobs worker haiku``) answers it, against a simulator run
  by another Python (SIM_PYTHON, which has the [sim] extra): a worker needs no extra;
- the commands that do need one say which, in one line;
- ``celery agentjobs`` (the celery.commands entry point) is installed;
- the wheel holds the package (Lua scripts included) and nothing of tests/, bench/,
  examples/ or harness/ (the drills the tests and benchmarks share).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OPTIONAL = ("aiohttp", "flower", "prometheus_client", "psycopg")
NOT_IMPORTED = ("aiohttp", "flower", "prometheus_client", "tornado")
BIN = Path(sys.executable).parent


def check(ok: bool, what: str) -> None:
    if not ok:
        sys.exit(f"core install: {what}")
    print(f"core install: ok: {what}")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=120, env=env or dict(os.environ)
    )


def one_line_naming(proc: subprocess.CompletedProcess[str], extra: str) -> bool:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    wanted = f"pip install 'agentjobs[{extra}]'"
    return proc.returncode == 1 and len(lines) == 1 and wanted in lines[0]


def main() -> None:
    checkout = Path(sys.argv[1]).resolve()
    sim_python = sys.argv[2]
    installed = [m for m in OPTIONAL if importlib.util.find_spec(m) is not None]
    check(not installed, f"no optional library installed (found: {installed or 'none'})")

    # Settings are read at first use: point agentjobs at a private Redis before that.
    from agentjobs.contrib.testing import RedisServer, free_port, spawn, terminate

    server = RedisServer().start()
    env = {
        "AGENTJOBS_BROKER_URL": f"{server.url}/0",
        "AGENTJOBS_REDIS_URL": f"{server.url}/1",
        "AGENTJOBS_RESULT_BACKEND": f"{server.url}/2",
    }
    os.environ.update(env)
    sim = worker = None
    try:
        import redis

        import agentjobs
        from agentjobs import complete

        where = Path(agentjobs.__file__).resolve()
        check("site-packages" in where.parts, f"agentjobs imported from the venv ({where})")
        result = complete.delay(prompt="hi [[sim:output_tokens=5]]", model="haiku")
        broker = redis.Redis.from_url(env["AGENTJOBS_BROKER_URL"])
        check(broker.llen("claude.haiku") == 1, "complete.delay published to claude.haiku")
        loaded = [m for m in NOT_IMPORTED if m in sys.modules]
        check(not loaded, f"complete.delay imported no optional library (found: {loaded})")

        port = free_port()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        sim = spawn([sim_python, "-m", "agentjobs.simulator", "--port", str(port)], **quiet)
        os.environ["ANTHROPIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        os.environ["ANTHROPIC_API_KEY"] = "sk-ant-core-check"
        log = Path(tempfile.mkdtemp(prefix="agentjobs-core-")) / "worker.log"
        with open(log, "wb") as out:
            worker = spawn(
                [str(BIN / "agentjobs"), "worker", "haiku", "-c", "2", "-l", "warning"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            answer = result.get(timeout=90)
        except Exception:
            print(log.read_text(errors="replace"), file=sys.stderr)
            raise
        check(
            answer["usage"]["output_tokens"] == 5 and answer["queue"] == "claude.haiku",
            "a worker without extras answered it (through the simulator)",
        )
    finally:
        terminate(worker, 30)
        terminate(sim, 10)
        server.cleanup()

    cli = str(BIN / "agentjobs")
    check(one_line_naming(run(cli, "sim"), "sim"), "agentjobs sim names the [sim] extra")
    helped = run(cli, "sim", "--help")
    check(helped.returncode == 0 and "--time-scale" in helped.stdout, "agentjobs sim --help")
    check(one_line_naming(run(cli, "exporter"), "ops"), "agentjobs exporter names [ops]")
    for name in ("exporter", "flower"):
        helped = run(cli, name, "--help")
        check(helped.returncode == 0 and "--address" in helped.stdout, f"agentjobs {name} --help")
    check(one_line_naming(run(cli, "flower"), "ops"), "agentjobs flower names [ops]")
    ext = run(str(BIN / "celery"), "agentjobs", "--help")
    check(ext.returncode == 0 and "dlq" in ext.stdout, "celery agentjobs --help (entry point)")

    files = [str(f) for f in importlib.metadata.files("agentjobs") or []]
    outside = ("tests", "bench", "examples", "harness")
    strays = [f for f in files if f.split("/")[0] in outside]
    check(not strays, f"the wheel ships nothing of {', '.join(outside)} ({strays[:3]})")
    check(importlib.util.find_spec("harness") is None, "the test harness is not importable")
    # A top-level celeryconfig in site-packages would stand in for a project's own.
    check(importlib.util.find_spec("celeryconfig") is None, "no top-level celeryconfig module")
    scripts = [f for f in files if f.endswith(".lua")]
    wanted = sorted(str(p.relative_to(checkout)) for p in checkout.glob("agentjobs/**/*.lua"))
    check(sorted(scripts) == wanted, f"the wheel ships the {len(wanted)} Lua scripts")


if __name__ == "__main__":
    main()
