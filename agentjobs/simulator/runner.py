"""Running the simulator: in a background thread for tests, or in the foreground.

``run_in_thread`` returns once the socket is listening, so a test can call the API
at once; ``SimHandle.stop`` closes the server and joins the thread. The handle's
``stats``/``reset``/``configure`` run on the server's loop, so they see and change the
same state the handlers do, without locks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

from agentjobs.simulator.config import SimConfig
from agentjobs.simulator.server import Simulator

T = TypeVar("T")
#: Seconds in-flight requests get to finish when the server stops.
SHUTDOWN_TIMEOUT_S = 1.0


async def start(sim: Simulator, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Listen on ``host:port`` (0: a free port); return the runner and the real port."""
    runner = web.AppRunner(
        sim.app(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, int(runner.addresses[0][1])


class SimHandle:
    """A simulator running on its own thread and event loop."""

    def __init__(self, sim: Simulator, host: str) -> None:
        self.simulator = sim
        self.host = host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready: Future[int] = Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="agentjobs-sim", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config(self) -> SimConfig:
        return self.simulator.config

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self._runner, port = await start(self.simulator, self.host, self.port)
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(port)
        try:
            await self._stop.wait()
        finally:
            await self._runner.cleanup()

    def start(self, port: int, timeout: float = 10.0) -> SimHandle:
        self.port = port
        self._thread.start()
        self.port = self._ready.result(timeout)
        return self

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn`` on the server's loop and return its result."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def stats(self, hashes: bool = False) -> dict[str, Any]:
        """Live counters, as ``GET /_sim/stats`` (``hashes=True``: with per-hash counts)."""
        return self.call(lambda: self.simulator.stats.snapshot(hashes=hashes))

    def reset(self) -> None:
        """Zero counters, refill buckets, empty the prompt cache, reseed the dice."""
        self.call(self.simulator.reset)

    def configure(self, **changes: Any) -> SimConfig:
        """Change settings at runtime, as ``POST /_sim/config``."""
        return self.call(lambda: self.simulator.configure(**changes))

    def flush_log(self) -> None:
        self.call(self.simulator.log.flush)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (in-flight requests get SHUTDOWN_TIMEOUT_S) and join the thread."""
        if not self._thread.is_alive():
            return
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(
    config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> SimHandle:
    """Start a simulator on a background thread; returns once it is listening."""
    return SimHandle(Simulator(config), host).start(port)


async def serve(
    config: SimConfig, host: str, port: int, ready: Callable[[str], None] | None = None
) -> None:
    """Serve until cancelled (the command cancels on SIGTERM/SIGINT)."""
    sim = Simulator(config)
    runner, real_port = await start(sim, host, port)
    if ready is not None:
        ready(f"http://{host}:{real_port}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
