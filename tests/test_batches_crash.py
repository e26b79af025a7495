"""The batch lane survives a worker killed -9 while it submits and while it polls:
nothing lost, nothing submitted twice (subprocess workers, the simulator behind a real
HTTP relay that can keep an answer from reaching the worker)."""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from agentjobs import complete
from agentjobs.contrib.testing import WorkerProcess
from agentjobs.errors import DeadLetteredError
from agentjobs.lanes import records

pytestmark = pytest.mark.slow


class Relay:
    """An HTTP relay to the simulator. ``hold(method, path_end)``: the next matching
    request is forwarded and answered by the simulator, but its answer is kept from the
    client until ``release()``; ``reached`` is set once the simulator has answered."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.match: tuple[str, str] | None = None
        self.reached = threading.Event()
        self.released = threading.Event()
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                req = urllib.request.Request(
                    relay.upstream + self.path, data=body, headers=headers, method=self.command
                )
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status, rh, data = resp.status, resp.headers, resp.read()
                except urllib.error.HTTPError as exc:
                    status, rh, data = exc.code, exc.headers, exc.read()
                # A batch's results_url names the simulator: point it at the relay too.
                data = data.replace(relay.upstream.encode(), relay.url.encode())
                path = self.path.split("?")[0]
                m = relay.match
                if m is not None and self.command == m[0] and path.endswith(m[1]):
                    relay.match = None
                    relay.reached.set()
                    relay.released.wait(60)
                    return  # the answer never reaches the (killed) client
                self.send_response(status)
                for k, v in rh.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hold(self, method: str, path_end: str) -> None:
        self.reached.clear()
        self.released.clear()
        self.match = (method, path_end)

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def relay(fresh_sim: Any) -> Iterator[Relay]:
    fresh_sim.configure(batch_processing_ms=300.0)
    r = Relay(fresh_sim.base_url)
    yield r
    r.stop()


def _worker(relay: Relay, tmp_path: Any, name: str) -> WorkerProcess:
    env = {
        "ANTHROPIC_BASE_URL": relay.url,
        "AGENTJOBS_BATCH_MAX_REQUESTS": "20",  # one batch of all 20, whenever they arrive
        "AGENTJOBS_BATCH_MAX_AGE_S": "60",
        "AGENTJOBS_BATCH_TICK_S": "0.05",
        "AGENTJOBS_BATCH_POLL_MIN_S": "0.05",
        "AGENTJOBS_BATCH_POLL_MAX_S": "0.2",
        "AGENTJOBS_BATCH_LOCK_S": "2",
    }
    return WorkerProcess("haiku", env, args=("-c", "4"), name=name, log_dir=str(tmp_path))


def _submit(n: int) -> list[Any]:
    return [complete.delay(prompt=f"crash item {i}", lane="batch", max_tokens=16) for i in range(n)]


@pytest.mark.parametrize(
    ("method", "path_end", "state"),
    [("POST", "/v1/messages/batches", "submitting"), ("GET", "/results", "in_progress")],
    ids=["during-submit", "during-poll"],
)
def test_a_worker_killed_mid_batch_loses_nothing_and_submits_nothing_twice(
    relay: Relay,
    fresh_sim: Any,
    tmp_path: Any,
    purge_queues: None,
    state_redis: Any,
    method: str,
    path_end: str,
    state: str,
) -> None:
    relay.hold(method, path_end)
    first = _worker(relay, tmp_path, "batch-doomed").start()
    handles = _submit(20)
    try:
        assert relay.reached.wait(60), first.log()
        first.kill()  # the API took the create (or sent the results): the worker never saw it
    finally:
        first.stop()
    (held,) = records.open_batches()
    assert held["state"] == state and len(held["cids"]) == 20
    relay.release()
    second = _worker(relay, tmp_path, "batch-heir").start()
    try:
        results = [h.get(timeout=60) for h in handles]
    finally:
        second.stop()
    assert all(r["lane"] == "batch" for r in results)
    assert {r["task_id"] for r in results} == {h.id for h in handles}
    stats = fresh_sim.stats()
    assert stats["batches"] == 1 and stats["batch_requests"] == 20  # nothing sent twice
    assert stats["messages"] == 0
    over = records.overview()
    assert over["open"] == [] and over["waiting_total"] == 0
    assert over["stats"].get("recovered", 0) == (1 if state == "submitting" else 0)


def _outcome(handle: Any) -> dict[str, Any] | DeadLetteredError:
    try:
        result: dict[str, Any] = handle.get(timeout=120)
        return result
    except DeadLetteredError as exc:
        exc.task_id = handle.id  # type: ignore[attr-defined]
        return exc


def dl_task(exc: DeadLetteredError) -> str:
    return str(exc.task_id)  # type: ignore[attr-defined]


def test_two_hundred_batch_requests_through_worker_processes(
    fresh_sim: Any, tmp_path: Any, purge_queues: None, state_redis: Any
) -> None:
    fresh_sim.configure(batch_processing_ms=500.0, batch_expire_share=0.1)
    env = {
        "AGENTJOBS_BATCH_MAX_REQUESTS": "50",
        "AGENTJOBS_BATCH_MAX_AGE_S": "1",
        "AGENTJOBS_BATCH_TICK_S": "0.05",
        "AGENTJOBS_BATCH_POLL_MIN_S": "0.1",
        "AGENTJOBS_BATCH_POLL_MAX_S": "0.3",
    }
    procs = [
        WorkerProcess(f, env, args=("-c", "4"), name=f"batch-{f}", log_dir=str(tmp_path))
        for f in ("haiku", "sonnet")
    ]
    for p in procs:
        p.launch()
    try:
        for p in procs:
            p.wait_ready()
        handles = [
            complete.delay(
                prompt=f"nightly summary {i}",
                model="haiku" if i % 2 else "sonnet",
                lane="batch",
                max_tokens=32,
            )
            for i in range(200)
        ]
        outcomes = [_outcome(h) for h in handles]
    finally:
        for p in procs:
            p.stop()
    results = [o for o in outcomes if isinstance(o, dict)]
    twice = [o for o in outcomes if isinstance(o, DeadLetteredError)]
    assert all("expired (sent twice)" in str(e) for e in twice)  # expired both times
    stats = fresh_sim.stats()
    assert stats["messages"] == 0  # not one synchronous call
    assert all(r["lane"] == "batch" for r in results)
    assert {r["task_id"] for r in results} | {dl_task(e) for e in twice} == {h.id for h in handles}
    # grouped into few batches: 100 requests per group in batches of at most 50, plus
    # the expired share sent once more
    expired = stats["batch_results"].get("expired", 0)
    assert expired >= 1
    assert 4 <= stats["batches"] <= 12
    over = records.overview()["stats"]
    assert stats["batch_requests"] == 200 + over["resubmitted"]  # each expired once: again
    assert over["resubmitted"] + len(twice) == expired and over["succeeded"] == len(results)
    assert sum(r["cost_usd"] for r in results) == pytest.approx(stats["batch_cost_usd"], abs=1e-5)
    saved = records.overview()["stats"]["saved_usd"]
    assert saved == pytest.approx(stats["batch_cost_usd"], abs=1e-5)  # half price: saved = paid
