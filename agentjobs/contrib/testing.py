"""Process helpers for the tests, the benchmarks and ``make demo``: private services, workers.

Everything here runs real parts: a private ``redis-server`` on a free port (so parallel
test runs never share queues), Celery workers in threads or as subprocesses, and the
simulator over HTTP. The pytest fixtures built on them are in ``pytest_plugin``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis

try:  # Linux: lets a child ask for SIGTERM when its parent dies (see _child_setup)
    import ctypes

    _LIBC: Any = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except OSError:  # pragma: no cover
    _LIBC = None
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """Runs in each child before exec: SIGTERM when the parent dies, so a killed test run
    or demo leaves no redis-server, simulator or worker behind."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Popen in a session of its own (a terminal's Ctrl-C reaches only the parent, which
    stops its children in order: workers before the Redis they ack to) that dies with
    the thread that started it (Linux; start children from the main thread)."""
    return subprocess.Popen(args, start_new_session=True, preexec_fn=_child_setup, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll until ``predicate()`` is truthy; its value, or TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL if ``proc`` has not exited within ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class RedisServer:
    """A private redis-server on a free port; ``persist=True`` turns on the AOF."""

    def __init__(self, port: int | None = None, persist: bool = False) -> None:
        self.port = port or free_port()
        self.persist = persist
        self.dir = tempfile.mkdtemp(prefix="agentjobs-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        args += ["--save", "", "--daemonize", "no", "--loglevel", "warning"]
        args += ["--appendonly", "yes" if self.persist else "no"]
        if self.persist:
            args += ["--appendfsync", "always"]
        self.proc = spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_for(lambda: _pings(client), timeout=10, what=f"redis-server on {self.port}")
        client.close()
        return self

    def stop(self) -> None:
        terminate(self.proc, 10.0)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class WorkerProcess:
    """``agentjobs worker FAMILY`` as a subprocess, for crash and multi-process tests."""

    def __init__(
        self,
        family: str,
        env: dict[str, str],
        args: tuple[str, ...] = (),
        name: str | None = None,
        log_dir: str | None = None,
        plain_celery: bool = False,
    ) -> None:
        self.family = family
        self.name = name or f"{family}-{os.getpid()}-{free_port()}"
        self.env = env
        self.args = args
        #: Start as ``celery -A agentjobs worker -Q claude.FAMILY -P threads`` instead.
        self.plain_celery = plain_celery
        self.log_path = Path(log_dir or tempfile.mkdtemp(prefix="agentjobs-worker-")) / (
            f"{self.name}.log"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 30.0) -> WorkerProcess:
        """Launch and wait until the worker consumes (``ready.`` in its log)."""
        return self.launch().wait_ready(ready_timeout)

    def command(self) -> list[str]:
        if self.plain_celery:
            cmd = [sys.executable, "-m", "celery", "-A", "agentjobs", "worker"]
            cmd += ["-Q", f"claude.{self.family}", "-P", "threads"]
        else:
            cmd = [sys.executable, "-m", "agentjobs", "worker", self.family]
        cmd += ["-n", f"{self.name}@%h", "-l", "info", "--without-gossip", "--without-mingle"]
        return cmd + list(self.args)

    def launch(self) -> WorkerProcess:
        """Start the process without waiting (start several, then ``wait_ready`` each)."""
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = spawn(
            self.command(),
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = 30.0) -> WorkerProcess:
        wait_for(self._ready, timeout=timeout, what=f"worker {self.name} ready")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited early:\n{self.log()}")
        return b" ready." in self.log_path.read_bytes()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the crash case, nothing is cleaned up."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: warm shutdown, running tasks finish."""
        terminate(self.proc, timeout)
        if getattr(self, "_log", None):
            self._log.close()


@contextlib.contextmanager
def worker_processes(*workers: WorkerProcess) -> Iterator[tuple[WorkerProcess, ...]]:
    started: list[WorkerProcess] = []
    try:
        for w in workers:  # launched together: startup (~2 s each) overlaps
            started.append(w.launch())
        for w in workers:
            w.wait_ready()
        yield workers
    finally:
        for w in started:
            w.stop()


class SimProcess:
    """``agentjobs sim`` as a subprocess on a free port (the demo and benchmarks use it)."""

    READY = "agentjobs simulator listening on "

    def __init__(self, *flags: str, log_dir: str | None = None) -> None:
        self.flags = flags
        self.log_path = Path(log_dir or tempfile.mkdtemp(prefix="agentjobs-sim-")) / "sim.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def start(self, timeout: float = 30.0) -> SimProcess:
        cmd = [sys.executable, "-m", "agentjobs", "sim", "--port", "0", *self.flags]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = spawn(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        self.base_url = wait_for(self._ready, timeout=timeout, what="simulator ready")
        return self

    def _ready(self) -> str:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"simulator exited early:\n{self.log()}")
        for line in self.log().splitlines():
            if line.startswith(self.READY):
                return line[len(self.READY) :].strip()
        return ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.proc, timeout)
        if getattr(self, "_log", None):
            self._log.close()


def rabbitmq_up(host: str = "127.0.0.1", port: int = 5672) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class RabbitVhost:
    """A throwaway RabbitMQ vhost, so parallel test runs never share the claude.* queues.

    Created through the management API when it answers, else with ``rabbitmqctl``; when
    neither works, ``url`` is the default vhost and ``shared`` is True (callers purge).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5672,
        user: str = "guest",
        password: str = "guest",
        management_port: int = 15672,
    ) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.management = f"http://{host}:{management_port}/api"
        self.name = f"agentjobs-test-{os.getpid()}-{free_port()}"
        self.how = ""

    @property
    def shared(self) -> bool:
        return self.how == "shared"

    @property
    def url(self) -> str:
        vhost = "" if self.shared else self.name
        return f"amqp://{self.user}:{self.password}@{self.host}:{self.port}/{vhost}"

    def _api(self, method: str, path: str, body: dict[str, str] | None = None) -> None:
        import base64
        import json
        import urllib.request

        req = urllib.request.Request(
            f"{self.management}{path}",
            method=method,
            data=json.dumps(body or {}).encode(),
            headers={"content-type": "application/json"},
        )
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("authorization", f"Basic {token}")
        urllib.request.urlopen(req, timeout=5).close()

    def _ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    def create(self) -> RabbitVhost:
        perms = {"configure": ".*", "write": ".*", "read": ".*"}
        try:
            self._api("PUT", f"/vhosts/{self.name}")
            self._api("PUT", f"/permissions/{self.name}/{self.user}", perms)
            self.how = "api"
            return self
        except OSError:
            pass
        if shutil.which("rabbitmqctl"):
            try:
                self._ctl("add_vhost", self.name)
                self._ctl("set_permissions", "-p", self.name, self.user, ".*", ".*", ".*")
                self.how = "rabbitmqctl"
                return self
            except (subprocess.SubprocessError, OSError):
                pass
        self.how = "shared"
        return self

    def delete(self) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if self.how == "api":
                self._api("DELETE", f"/vhosts/{self.name}")
            elif self.how == "rabbitmqctl":
                self._ctl("delete_vhost", self.name)


def http_get(url: str, auth: str | None = None, data: bytes | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET (or a JSON POST with ``data``); basic ``auth`` "user:pw";
    status 0 when nothing answers, so it can be polled with ``wait_for``."""
    import base64
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


class _CreatesFile:
    """Unpickling this creates a file: proof that a message body was deserialised."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def publish_pickled(
    conn: Any, app: Any, marker: Path, task_id: str, queue: str = "claude.haiku"
) -> None:
    """Publish, on the kombu connection ``conn``, an ``agentjobs.complete`` message
    serialised with pickle, as a client of a pickle-accepting project would: unpickling
    its body creates ``marker``, so a worker that refuses it unread leaves no file."""
    import pickle

    kwargs: dict[str, Any] = {"prompt": f"pickled {task_id}", "model": "haiku"}
    kwargs["metadata"] = {"x": _CreatesFile(marker)}
    body = pickle.dumps(((), kwargs, {"callbacks": None, "errbacks": None, "chain": None}))
    headers = {
        "lang": "py",
        "task": "agentjobs.complete",
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "argsrepr": "()",
        "kwargsrepr": "{...}",
        "origin": "test",
    }
    q = app.amqp.queues[queue]
    conn.Producer().publish(
        body,
        exchange=q.exchange,
        routing_key=q.routing_key,
        declare=[q],
        headers=headers,
        content_type="application/x-python-serialize",
        content_encoding="binary",
        serializer=None,
    )
