"""Everything a run needs on this machine, started for it and stopped after it: a private
``redis-server``, the simulator and one worker process (``agentjobs eval --local`` and
``pytest --agentjobs-eval ... --agentjobs-eval-local``, e.g. in CI).

Built from the helpers of ``contrib.testing`` that ``make demo`` and the tests use
(``RedisServer``, ``SimProcess``, ``WorkerProcess``). The simulator runs with a fixed
seed and a fixed latency (``SIM_FLAGS``), so a baseline recorded with ``--local`` on one
machine measures the same thing on another, and its latency dominates the overhead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator

from agentjobs.contrib.testing import RedisServer, SimProcess, WorkerProcess
from agentjobs.errors import ConfigurationError

#: Every answer takes 150 ms (no spread, output not paced), the same dice every run.
SIM_FLAGS = (
    "--seed", "1", "--latency-median-ms", "150", "--latency-spread", "0",
    "--output-tokens-per-s", "0",
)  # fmt: skip
#: The key the simulator is sent: never the developer's real one.
SIM_API_KEY = "sk-ant-test"


@contextlib.contextmanager
def local_services(
    include: Iterable[str] = (),
    paths: Iterable[str] = (),
    concurrency: int = 8,
    sim_flags: Iterable[str] = SIM_FLAGS,
    log_dir: str | None = None,
    prepare: Callable[[], None] | None = None,
) -> Iterator[dict[str, str]]:
    """Start Redis, the simulator and a worker on every ``claude.*`` queue and
    ``agentjobs.tools`` (importing the modules in ``include``, with ``paths`` on its
    PYTHONPATH); point this process at them for the block. ``prepare`` runs once this
    process points at them, before the worker starts. Yields the variables set."""
    from agentjobs import catalog
    from agentjobs.agents.tool import TOOLS_QUEUE

    if not shutil.which("redis-server"):
        raise ConfigurationError(
            "--local needs redis-server on the PATH (Debian/Ubuntu: apt-get install "
            "redis-server; macOS: brew install redis)"
        )
    log_dir = log_dir or tempfile.mkdtemp(prefix="agentjobs-local-")
    saved = dict(os.environ)
    with contextlib.ExitStack() as stack:
        server = RedisServer()
        stack.callback(server.cleanup)
        server.start()
        sim = SimProcess(*sim_flags, log_dir=log_dir)
        stack.callback(sim.stop)
        sim.start()
        env = {
            "AGENTJOBS_BROKER_URL": f"{server.url}/0",
            "AGENTJOBS_REDIS_URL": f"{server.url}/1",
            "AGENTJOBS_RESULT_BACKEND": f"{server.url}/2",
            "ANTHROPIC_BASE_URL": sim.base_url,
            "ANTHROPIC_API_KEY": SIM_API_KEY,
        }
        os.environ.pop("ANTHROPIC_AUTH_TOKEN", None)
        os.environ.update(env)
        stack.callback(_restore, saved)
        _reread()
        if prepare is not None:
            prepare()
        queues = [catalog.queue_for(f) for f in catalog.FAMILIES] + [TOOLS_QUEUE]
        modules = ",".join(["agentjobs.agents.tasks", *include])
        pythonpath = os.pathsep.join([*paths, *filter(None, [saved.get("PYTHONPATH")])])
        worker = WorkerProcess(
            "haiku",
            {"PYTHONPATH": pythonpath} if pythonpath else {},
            args=("-Q", ",".join(queues), "-I", modules, "-c", str(concurrency)),
            name="eval-local",
            log_dir=log_dir,
        )
        stack.callback(worker.stop, 15.0)
        worker.start(ready_timeout=60.0)
        yield env


def _reread() -> None:
    """Settings, the API client and the Celery app follow the new variables."""
    import sys

    from agentjobs.api import client
    from agentjobs.settings import reset_settings

    reset_settings()
    client.reset_client()
    app_module = sys.modules.get("agentjobs.worker.app")
    if app_module is not None:
        conf = app_module.app.conf
        if conf.broker_url != os.environ["AGENTJOBS_BROKER_URL"]:
            raise RuntimeError("the Celery app was configured before the local services")


def _restore(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)
    from agentjobs.settings import reset_settings

    reset_settings()
