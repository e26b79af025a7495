"""deploy/ and docker-compose.yml, without a container engine.

Each compose service's command runs as a local process with its own environment
(service hostnames mapped to 127.0.0.1, each exposed port to a free one), proving the
commands and variables are right. Alert rules and the dashboard use only metric names
the exporter serves; promtool checks them when installed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentjobs import catalog
from agentjobs.cli.worker import TOOLS
from agentjobs.contrib.testing import free_port, wait_for
from agentjobs.contrib.testing import http_get as _get
from agentjobs.ops import metrics
from agentjobs.ops.metric_specs import exported_series
from agentjobs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ENV = {
    "REDIS_PASSWORD": "test-redis-pw",
    "AGENTJOBS_FLOWER_BASIC_AUTH": "ops:test-flower-pw",
    "AGENTJOBS_CONSOLE_BASIC_AUTH": "ops:test-console-pw",
    "GRAFANA_ADMIN_PASSWORD": "test-grafana-pw",
    "HAIKU_CONCURRENCY": "4",
    "SONNET_CONCURRENCY": "2",
    "TOOLS_CONCURRENCY": "3",
    "SIM_LATENCY_MEDIAN_MS": "0",
}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution; $$ is a $."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name)
        if op == ":?" and not value:
            raise AssertionError(f"compose requires {name}: {arg}")
        if op == ":-" and not value:
            return arg
        return value or ""

    return re.sub(r"\$\$|\$\{(\w+)(?:(:[-?])([^}]*))?\}", sub, text)


def duration_s(text: str) -> float:
    """A compose duration ("4m", "1m30s", "10s") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def service_settings(svc: dict[str, Any]) -> Settings:
    """agentjobs' settings as a service's environment makes them."""
    env = svc.get("environment") or {}
    given = {
        k.removeprefix("AGENTJOBS_").lower(): v
        for k, v in env.items()
        if k.startswith("AGENTJOBS_") and v not in ("", None)
    }
    return Settings(**given)


#: The worker services and the family (or ``tools``) each serves.
WORKERS = {"worker-haiku": "haiku", "worker-sonnet": "sonnet", "worker-tools": TOOLS}


def largest_max_tokens() -> int:
    """The largest max_tokens a request may ask for: the catalog's largest output."""
    return max(m.max_output_tokens for m in catalog.models().values())


def longest_task_s(s: Settings, max_tokens: int) -> float:
    """The longest a running ``complete`` or agent step of ``max_tokens`` takes: the
    waits for an identical call in flight, for another copy's lease and for the limiter,
    then its own call (``Settings.call_timeout_s``, which the client enforces)."""
    return (
        s.cache_wait_s + s.idempotency_wait_s + s.limiter_max_sleep_s + s.call_timeout_s(max_tokens)
    )


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    text = interpolate((ROOT / "docker-compose.yml").read_text(), env or ENV)
    return yaml.safe_load(text)


def used_metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bagentjobs_[a-z_]+\b", text))


def test_compose_shape() -> None:
    doc = compose()
    services = doc["services"]
    for name in ("redis", *WORKERS, "flower", "console", "exporter", "web"):
        assert name in services and not services[name].get("profiles"), name
    assert services["simulator"]["profiles"] == ["sim"]
    assert services["postgres"]["profiles"] == services["sessions-migrate"]["profiles"]
    assert services["postgres"]["profiles"] == ["postgres"]
    redis_cmd = services["redis"]["command"]
    assert "--appendonly yes" in redis_cmd and "--maxmemory-policy noeviction" in redis_cmd
    assert "--requirepass test-redis-pw" in redis_cmd
    assert "test-flower-pw" in services["flower"]["environment"]["AGENTJOBS_FLOWER_BASIC_AUTH"]
    console_auth = services["console"]["environment"]["AGENTJOBS_CONSOLE_BASIC_AUTH"]
    assert console_auth == "ops:test-console-pw"
    assert services["worker-haiku"]["environment"]["AGENTJOBS_WORKER_CONCURRENCY"] == 4
    assert services["worker-tools"]["environment"]["AGENTJOBS_WORKER_CONCURRENCY"] == 3
    # workers scale with --scale: no fixed container name, no host port
    for w in WORKERS:
        assert "container_name" not in services[w] and "ports" not in services[w]
    for needed in ("REDIS_PASSWORD", "AGENTJOBS_CONSOLE_BASIC_AUTH"):
        with pytest.raises(AssertionError, match=needed):
            compose({k: v for k, v in ENV.items() if k != needed})
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    # one image for every service: the extras of the simulator, Flower and the exporter,
    # PostgreSQL and OpenTelemetry, and the examples' web frameworks
    assert 'pip install ".[all,examples]"' in dockerfile


def test_workers_load_the_agent_modules_given() -> None:
    """Agents and tools are found by name in each worker's registry: every worker runs
    ``-I $AGENT_MODULES``; unset, a module of agentjobs' own that loads (a no-op)."""
    import importlib

    for given in (None, "myapp.agents,myapp.tools"):
        env = ENV if given is None else {**ENV, "AGENT_MODULES": given}
        services = compose(env)["services"]
        for w, family in WORKERS.items():
            argv = shlex.split(services[w]["command"])
            assert argv[:3] == ["agentjobs", "worker", family], w
            modules = argv[argv.index("-I") + 1]
            if given is not None:
                assert modules == given, w
            else:
                for name in modules.split(","):
                    importlib.import_module(name)


def test_workers_get_time_to_finish_their_calls_when_stopped() -> None:
    services = compose()["services"]
    top = largest_max_tokens()
    for w in ("worker-haiku", "worker-sonnet"):
        svc = services[w]
        # compose's stop signal is SIGTERM (warm shutdown: running calls finish)
        assert svc.get("stop_signal", "SIGTERM") == "SIGTERM", w
        grace = duration_s(svc["stop_grace_period"])
        # the longest a running task takes at the largest max_tokens a request may ask
        # for, and a stop escalated to cold (SIGQUIT) adds at most the soft shutdown
        for s in (service_settings(svc), Settings()):
            assert grace > s.soft_shutdown_s + longest_task_s(s, top), (w, grace, top)
        # and within a few minutes of it: a bound, not a guess
        assert grace < Settings().soft_shutdown_s + longest_task_s(Settings(), top) + 300, w
    # the tools worker's tasks are the user's tools (no lease wait): the soft shutdown
    # plus the longest tool the comment promises
    tools = services["worker-tools"]
    assert tools.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = duration_s(tools["stop_grace_period"])
    assert grace == 300 and grace - Settings().soft_shutdown_s == 240


def test_services_have_healthchecks() -> None:
    services = compose()["services"]
    for name in ("redis", *WORKERS, "flower", "console", "exporter", "simulator", "postgres"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    # each worker is pinged by the name it runs under
    for w, family in WORKERS.items():
        svc = services[w]
        assert f"-d {family}@$HOSTNAME" in svc["healthcheck"]["test"][1]
        assert svc["command"].startswith(f"agentjobs worker {family}")
        assert "-n " not in svc["command"]  # so the name is FAMILY@%h, %h the hostname
    # what depends on Redis waits until it answers; the migration, until PostgreSQL does
    for name in (*WORKERS, "flower", "console", "exporter", "web"):
        assert services[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    migrate = services["sessions-migrate"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no" and migrate["command"] == "agentjobs sessions migrate"


def test_alerts_and_dashboard_use_exported_names() -> None:
    exported = set(exported_series())
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert len(alerts) >= 6
    exprs = " ".join(r["expr"] for r in alerts.values())
    for needed in (
        "agentjobs_dead_lettered_total",
        "agentjobs_rate_limited_total",
        "agentjobs_call_seconds_bucket",
        "agentjobs_queue_depth",
        "agentjobs_workers",
    ):
        assert needed in exprs
    assert used_metric_names(exprs) <= exported, used_metric_names(exprs) - exported
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "agentjobs.json").read_text())
    assert dash["uid"] == "agentjobs" and dash["panels"]
    dash_exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    assert used_metric_names(dash_exprs) <= exported, used_metric_names(dash_exprs) - exported
    for fig in ("queue_depth", "call_seconds", "rate_limited", "cache_hits", "dead_letters",
                "tokens", "cost_usd", "first_token_seconds"):  # fmt: skip
        assert f"agentjobs_{fig}" in dash_exprs, fig
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


_SELECTOR = re.compile(r"\b(agentjobs_[a-z_]+)(?:\{([^}]*)\})?")


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """Each series selector of a PromQL expression: (name, {label: "op value"})."""
    found = []
    for name, inner in _SELECTOR.findall(expr):
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', inner)
        found.append((name, {label: op + value for label, op, value in matchers}))
    return found


def test_dashboard_imports_into_any_grafana_and_filters_by_queue_and_model() -> None:
    text = (DEPLOY / "grafana" / "dashboards" / "agentjobs.json").read_text()
    dash = json.loads(text)
    labels = exported_series()
    # The format of Grafana's "import dashboard": the data source is asked for...
    (ds_input,) = dash["__inputs"]
    assert ds_input["type"] == "datasource" and ds_input["pluginId"] == "prometheus"
    ds = "${" + ds_input["name"] + "}"
    # ...and, for file provisioning (which ignores __inputs), a data-source variable of
    # the same name picks the default Prometheus.
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables[ds_input["name"]]["type"] == "datasource"
    assert variables[ds_input["name"]]["query"] == "prometheus"
    assert '"uid": "prometheus"' not in text  # no hard-coded data source left
    for p in dash["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": ds}, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": ds}, p["title"]
    # queue and model variables, from labels the code's metrics have
    for name in ("queue", "model"):
        var = variables[name]
        assert var["type"] == "query" and var["datasource"] == {"type": "prometheus", "uid": ds}
        metric, label = re.fullmatch(
            r"label_values\((agentjobs_[a-z_]+)(?:\{[^}]*\})?,\s*(\w+)\)", var["definition"]
        ).groups()  # type: ignore[union-attr]
        assert label == name and name in labels[metric], (name, metric)
        assert var["query"]["query"] == var["definition"]
        for used, matchers in selectors(var["definition"]):
            assert set(matchers) <= labels[used], (name, matchers)
    # every panel filters by them wherever its series carry the label
    exprs = [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]
    for title, expr in exprs:
        for name, matchers in selectors(expr):
            assert set(matchers) <= labels[name], (title, name, matchers)
            for var in ("queue", "model"):
                if var in labels[name]:
                    assert matchers.get(var) == f"=~${var}", (title, name, var)
        for grouping in re.findall(r"\bby \(([^)]*)\)", expr):
            used = {g.strip() for g in grouping.split(",")}
            series = [labels[n] for n, _ in selectors(expr)]
            assert all(used <= s for s in series), (title, used)
        for ref in re.findall(r"\$(\w+)", expr):
            assert ref in variables, (title, ref)


def test_promtool_checks_config_and_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus); schema test above")
    out = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "7 rules found" in out.stdout + out.stderr


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "agentjobs.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]
    # as recording rules, with the variables as Grafana sends "All"; label_values() is
    # Grafana's, its selector is PromQL
    rules = []
    for i, expr in enumerate(exprs):
        expr = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", expr)
        rules.append({"record": f"dashboard_query_{i}", "expr": re.sub(r"\$\w+", ".*", expr)})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rules)} rules found" in out.stdout + out.stderr


class Stack:
    """The compose services as local processes."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.doc = compose(env)
        self.ports: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for name, svc in self.doc["services"].items():
            for p in svc.get("expose", []):
                self.ports[f"{name}:{p}"] = free_port()

    def local(self, text: str) -> str:
        for hostport, port in self.ports.items():
            text = text.replace(hostport, f"127.0.0.1:{port}")
        return text.replace("0.0.0.0", "127.0.0.1")

    def own_ports(self, name: str, text: str) -> str:
        """``text`` with the service's own listening ports replaced by the local ones."""
        for p in self.doc["services"][name].get("expose", []):
            text = re.sub(rf"(?<![\d.]){p}(?!\d)", str(self.ports[f"{name}:{p}"]), text)
        return self.local(text)

    def argv(self, name: str) -> list[str]:
        cmd = self.doc["services"][name]["command"]
        return shlex.split(self.own_ports(name, cmd if isinstance(cmd, str) else shlex.join(cmd)))

    def env(self, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The service's environment, as its container would have it (and ``extra``)."""
        svc = self.doc["services"][name]
        env = {k: self.local(str(v)) for k, v in (svc.get("environment") or {}).items()}
        bin_dir = str(Path(sys.executable).parent)
        # docker sets HOSTNAME to the container's hostname, which is what %h expands to
        base = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(self.tmp)}
        return {**base, "HOSTNAME": socket.gethostname(), **env, **(extra or {})}

    def start(
        self, name: str, argv: list[str] | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        cwd = self.tmp / name
        cwd.mkdir()
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        argv = argv or self.argv(name)
        if name == "web":
            argv = [a.replace("examples/", f"{ROOT}/examples/") for a in argv]
        proc = subprocess.Popen(
            argv, env=self.env(name, env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs[name] = proc
        return proc

    def healthcheck(self, name: str, env: dict[str, str] | None = None) -> bool:
        """Run the service's healthcheck as docker would in its container: within its
        timeout, healthy on exit status 0."""
        check = self.doc["services"][name]["healthcheck"]
        kind, *args = check["test"]
        args = [self.own_ports(name, a) for a in args]
        argv = ["sh", "-c", args[0]] if kind == "CMD-SHELL" else args
        try:
            done = subprocess.run(
                argv,
                env=self.env(name, env),
                cwd=self.tmp,
                capture_output=True,
                timeout=duration_s(check["timeout"]),
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def alive(self, name: str) -> bool:
        if self.procs[name].poll() is not None:
            raise AssertionError(f"{name} exited:\n{self.log(name)}")
        return True

    def url(self, name: str, port: int) -> str:
        return f"http://127.0.0.1:{self.ports[f'{name}:{port}']}"

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_every_service_command_runs(tmp_path: Path) -> None:
    # the workers load the support desk's agents and tools (-I $AGENT_MODULES)
    stack = Stack(tmp_path, {**ENV, "AGENT_MODULES": "desk"})
    try:
        # redis: password, persistence and noeviction as the command says
        stack.start("redis")
        rport = stack.ports["redis:6379"]
        import redis

        def pings() -> bool:
            try:
                return bool(redis.Redis(port=rport, password="test-redis-pw").ping())
            except redis.ConnectionError:
                return stack.alive("redis") and False

        wait_for(pings, timeout=15, what="redis")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=rport).ping()
        r = redis.Redis(port=rport, password="test-redis-pw")
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        assert stack.healthcheck("redis")
        assert not stack.healthcheck("redis", {"REDISCLI_AUTH": "wrong"})

        stack.start("simulator")
        wait_for(
            lambda: stack.alive("simulator") and "listening on" in stack.log("simulator"),
            timeout=30,
            what="simulator",
        )
        # the module of agents and tools: an image would have it installed, here it is
        # on PYTHONPATH (a worker that cannot import it exits at start)
        agents = {"PYTHONPATH": str(ROOT / "examples" / "agent_app")}
        for w in WORKERS:
            assert stack.argv(w)[-2:] == ["-I", "desk"], w
        for w in WORKERS:
            stack.start(w, env=agents)
        for w in WORKERS:
            wait_for(lambda w=w: stack.alive(w) and " ready." in stack.log(w), 60, what=w)
        assert "concurrency: 4" in stack.log("worker-haiku").replace("(thread)", "")
        assert "agentjobs.tools" in stack.log("worker-tools")
        assert "concurrency: 3" in stack.log("worker-tools").replace("(thread)", "")
        for w in WORKERS:
            assert stack.healthcheck(w), w
        assert not stack.healthcheck("worker-haiku", {"HOSTNAME": "another-container"})
        assert stack.healthcheck("simulator")
        stack.start("flower")
        stack.start("console")
        stack.start("exporter")
        stack.start("web")
        web = stack.url("web", 8000)
        # the Flask app imports agentjobs, Celery and the example: as long as a worker
        wait_for(lambda: stack.alive("web") and _get(web + "/jobs/x")[0] == 200, 60, what="web")

        # a job through the Flask example, a worker, Redis and the simulator
        ids = []
        for model in ("haiku", "sonnet"):
            status, body = _get(
                web + "/jobs", data=json.dumps({"prompt": "hi", "model": model}).encode()
            )
            assert status == 202, body
            ids.append(json.loads(body)["task_id"])
        for tid in ids:
            wait_for(
                lambda tid=tid: json.loads(_get(f"{web}/jobs/{tid}")[1])["state"] == "SUCCESS",
                timeout=30,
                what=f"job {tid}",
            )

        flower = stack.url("flower", 5555)
        wait_for(lambda: stack.alive("flower") and _get(flower + "/healthcheck")[0] == 200, 30)
        assert _get(flower + "/api/workers")[0] == 401
        assert _get(flower + "/api/workers", "ops:test-flower-pw")[0] == 200
        assert stack.healthcheck("flower")

        console = stack.url("console", 5600)
        wait_for(lambda: stack.alive("console") and _get(console + "/")[0] == 401, 30)
        status, body = _get(console + "/sessions", "ops:test-console-pw")
        assert status == 200 and b"sessions" in body.lower()
        assert stack.healthcheck("console")

        exporter = stack.url("exporter", 9808)

        def scraped() -> str:
            stack.alive("exporter")
            status, body = _get(exporter + "/metrics")
            return body.decode() if status == 200 else ""

        text = wait_for(scraped, 20, what="exporter")
        assert stack.healthcheck("exporter")
        assert 'agentjobs_workers{queue="claude.haiku"} 1.0' in text
        assert 'agentjobs_tasks_total{model="claude-sonnet-4-6",outcome="succeeded"' in text

        prometheus = shutil.which("prometheus")
        if prometheus is None:
            pytest.skip("prometheus binary not installed: its config is checked by promtool")
        conf = tmp_path / "etc-prometheus"
        shutil.copytree(DEPLOY / "prometheus", conf)
        cfg = conf / "prometheus.yml"
        # scrape every second here, so the test need not wait for the first 15 s scrape
        cfg.write_text(
            stack.local(cfg.read_text()).replace("scrape_interval: 15s", "scrape_interval: 1s")
        )
        argv = [
            a.replace("=/etc/prometheus/", f"={conf}/").replace(
                "--storage.tsdb.path=/prometheus", f"--storage.tsdb.path={tmp_path / 'tsdb'}"
            )
            for a in stack.argv("prometheus")
        ]
        stack.start("prometheus", [prometheus, *argv])
        prom = stack.url("prometheus", 9090)
        wait_for(lambda: stack.alive("prometheus") and _get(prom + "/-/ready")[0] == 200, 30)
        rules = json.loads(_get(prom + "/api/v1/rules")[1])
        assert sum(len(g["rules"]) for g in rules["data"]["groups"]) == 7

        def targets_up() -> dict[str, str]:
            body = _get(prom + "/api/v1/targets")[1]
            found = json.loads(body)["data"]["activeTargets"] if body else []
            health = {t["labels"]["job"]: t["health"] for t in found}
            return health if set(health.values()) == {"up"} else {}

        # the first scrape happens at start-up: both targets up
        assert wait_for(targets_up, timeout=30, what="targets up").keys() == {"agentjobs", "flower"}
    finally:
        stack.stop()


def test_worker_without_key_or_simulator_stops_at_start_with_one_line(tmp_path: Path) -> None:
    """`docker compose up` without `--profile sim` and without ANTHROPIC_API_KEY."""
    import redis

    stack = Stack(tmp_path)
    try:
        stack.start("redis")
        wait_for(lambda: stack.alive("redis") and stack.healthcheck("redis"), 15, what="redis")
        # Celery warns whoever starts a worker as root (tests do; the image does not)
        not_root = {"PYTHONWARNINGS": "ignore:You're running the worker with superuser"}
        proc = stack.start("worker-haiku", env=not_root)
        assert proc.wait(60) == 1, stack.log("worker-haiku")
        lines = stack.log("worker-haiku").strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("Error: worker not started: no ANTHROPIC_API_KEY")
        assert "(AGENTJOBS_SIM_URL)" in lines[0] and "set ANTHROPIC_API_KEY" in lines[0]
        # and it is not counted as a live worker (agentjobs_workers)
        state = redis.Redis(port=stack.ports["redis:6379"], password="test-redis-pw", db=1)
        assert metrics.workers_alive(["claude.haiku"], client=state) == {"claude.haiku": 0}
    finally:
        stack.stop()


def test_the_postgres_profile_creates_the_session_schema(tmp_path: Path, postgres_url: str) -> None:
    """`docker compose --profile postgres up`: sessions-migrate, with the URL .env gives
    every service, creates the schema in the profile's database (here a private one on
    the local PostgreSQL)."""
    import psycopg

    from agentjobs.agents import postgres_store

    url = "postgresql://agentjobs:test-pg-pw@postgres:5432/agentjobs"
    env = {**ENV, "POSTGRES_PASSWORD": "test-pg-pw", "AGENTJOBS_SESSION_STORE": url}
    services = compose(env)["services"]
    pg = services["postgres"]["environment"]
    # the URL names the profile's service, user, password and database
    assert url == (
        f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:"
        f"{services['postgres']['expose'][0]}/{pg['POSTGRES_DB']}"
    )
    for name in (*WORKERS, "console", "sessions-migrate"):
        assert services[name]["environment"]["AGENTJOBS_SESSION_STORE"] == url, name
    migrate = services["sessions-migrate"]
    given = {k: str(v) for k, v in migrate["environment"].items()}
    given["AGENTJOBS_SESSION_STORE"] = postgres_url
    bin_dir = str(Path(sys.executable).parent)
    base = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    for _ in range(2):  # safe to run again
        done = subprocess.run(
            shlex.split(migrate["command"]),
            env={**base, **given},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    with psycopg.connect(postgres_url) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    assert {postgres_store.SESSIONS, postgres_store.CHECKPOINTS} <= tables, tables
