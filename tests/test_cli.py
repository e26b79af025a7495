"""The command line's own behaviour: sub-commands load on use, so ``agentjobs --help``
and ``agentjobs sim`` stay light; configuration errors and unreachable services are one
line, not a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from agentjobs.cli import COMMANDS, load, main
from agentjobs.contrib.testing import SimProcess, free_port, rabbitmq_up
from agentjobs.settings import reset_settings


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("AGENTJOBS_RESULT_TTL_S", "abc", "AGENTJOBS_RESULT_TTL_S"),
        ("AGENTJOBS_RETRY_POLICIES", '{"opus": {"max_atempts": 8}}', "max_atempts"),
        ("AGENTJOBS_BUDGET_TENANTS", "{bad", "AGENTJOBS_BUDGET_TENANTS: not valid JSON"),
        ("AGENTJOBS_RETRY_POLICIES", '{"opus": ', "AGENTJOBS_RETRY_POLICIES: not valid JSON"),
        ("AGENTJOBS_PRICES_FILE", "/nonexistent/prices.json", "AGENTJOBS_PRICES_FILE"),
    ],
)
def test_a_bad_setting_is_one_clear_line(var: str, value: str, expected: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentjobs", "worker", "haiku"],
        env={**os.environ, var: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "bad setting" in proc.stderr and expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "\n" not in proc.stderr.strip()  # one line


# -- sub-commands load on use ---------------------------------------------------------


def imported(importtime_log: str) -> set[str]:
    """The modules a ``python -X importtime`` run imported, from its stderr."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in importtime_log.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def heavy(modules: set[str], packages: tuple[str, ...] = ("celery", "anthropic")) -> set[str]:
    """The Celery app and what of ``packages`` is among ``modules``."""
    return {m for m in modules if m.split(".")[0] in packages or m == "agentjobs.worker.app"}


def test_help_lists_every_command_and_imports_none_of_them() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agentjobs", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = dict(re.findall(r"^  (\w+)\s+(.+)$", proc.stdout.split("Commands:\n")[1], re.M))
    assert set(listed) == set(COMMANDS)
    for name, text in listed.items():  # click's listing: the one line, cut with "..."
        assert COMMANDS[name].short_help.startswith(text.removesuffix("...")), name
    assert listed["worker"] == "Run a worker for FAMILY's queue (claude.FAMILY)."
    modules = imported(proc.stderr)
    assert "agentjobs.cli" in modules  # the log is what it should be
    assert not heavy(modules, ("celery", "anthropic", "aiohttp")), sorted(heavy(modules))
    commands = {t.target.partition(":")[0] for t in COMMANDS.values()}
    assert not modules & commands, sorted(modules & commands)


def test_the_listed_help_is_each_commands_own() -> None:
    for name, lazy in COMMANDS.items():
        command = load(name)
        assert command.name == name
        assert command.get_short_help_str(limit=1_000) == lazy.short_help, name
        assert main.get_command(click.Context(main), name) is command


def test_sim_runs_without_the_celery_app(monkeypatch: pytest.MonkeyPatch) -> None:
    # PYTHONPROFILEIMPORTTIME is -X importtime for a child we do not start by hand.
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    sim = SimProcess()
    try:
        sim.start()
    finally:
        sim.stop()
    modules = imported(sim.log())
    assert "agentjobs.simulator.server" in modules
    assert not heavy(modules), sorted(heavy(modules))


# -- one line for an unreachable service ----------------------------------------------


@pytest.mark.parametrize(
    ("argv", "doing"),
    [
        (["dlq", "list"], "reach"),
        (["dlq", "show", "dl_x"], "reach"),
        (["limiter"], "reach"),
        (["limiter", "pause", "opus", "5"], "reach"),
        (["limiter", "resume", "opus"], "reach"),
        (["dlq", "resume", "opus"], "reach"),
        (["recover", "--dry-run"], "reach"),
        (["cost"], "read the cost totals from"),
        (["stats"], "read metrics from"),
    ],
)
def test_state_store_down_is_one_line_naming_it(
    argv: list[str], doing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/1"
    monkeypatch.setenv("AGENTJOBS_REDIS_URL", url)
    reset_settings()
    try:
        out = CliRunner().invoke(main, argv)
    finally:
        monkeypatch.undo()
        reset_settings()
    assert out.exit_code == 1, out.output
    assert out.output.count("\n") == 1, out.output
    assert out.output.startswith(
        f"Error: cannot {doing} the state store {url} (AGENTJOBS_REDIS_URL): "
    )


def test_broker_down_is_one_line_without_its_password(tmp_path: os.PathLike[str]) -> None:
    dead = f"127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "agentjobs", "recover", "--dry-run", "--grace", "0"],
        env={**os.environ, "AGENTJOBS_BROKER_URL": f"redis://:s3cret@{dead}/0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(
        f"Error: cannot reach the broker redis://:**@{dead}/0 (AGENTJOBS_BROKER_URL): "
    ), proc.stderr
    assert proc.stderr.count("\n") == 1 and "s3cret" not in proc.stderr


@pytest.mark.rabbitmq
@pytest.mark.parametrize(
    ("credentials", "vhost", "why"),
    [("guest:wrong", "", "ACCESS_REFUSED"), ("guest:guest", "no-such-vhost", "NOT_ALLOWED")],
    ids=["wrong-password", "no-such-vhost"],
)
def test_a_rabbitmq_that_refuses_the_connection_is_one_line(
    credentials: str, vhost: str, why: str, tmp_path: Path
) -> None:
    if not rabbitmq_up():
        if os.environ.get("CI") == "true":
            pytest.fail("RabbitMQ is not running on 127.0.0.1:5672 (CI must test it)")
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    requests = tmp_path / "requests.jsonl"
    requests.write_text('{"prompt": "hi", "model": "haiku"}\n')
    url = f"amqp://{credentials}@127.0.0.1:5672/{vhost}"
    proc = subprocess.run(
        [sys.executable, "-m", "agentjobs", "submit", str(requests), "--timeout", "5"],
        env={**os.environ, "AGENTJOBS_BROKER_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    masked = url.replace(credentials, credentials.split(":")[0] + ":**")
    assert lines[0].startswith(
        f"Error: cannot reach the broker {masked} (AGENTJOBS_BROKER_URL): "
    ), lines[0]
    assert why in lines[0]


def test_dlq_list_marks_a_cut_message_and_show_prints_every_attempt_whole(
    state_redis: object,
) -> None:
    import time

    from agentjobs.reliability import deadletter

    now = time.time()
    long = "the request was refused: " + "too long " * 20 + "END"
    attempt = deadletter.Attempt(
        n=1, started_at=now, at=now, error_class="BadRequestError", kind="bad_request",
        message=long,
    )  # fmt: skip
    record = deadletter.DeadLetter(
        id=deadletter.dead_letter_id("cut"), created_at=now, request={"prompt": "p"},
        error_class="BadRequestError", error_kind="bad_request", message=long, status=400,
        reason="permanent", attempts=[attempt], queue="claude.haiku", worker="w",
        task_id="cut", idempotency_key="cut",
    )  # fmt: skip
    deadletter.add(record)
    runner = CliRunner()
    listed = runner.invoke(main, ["dlq", "list"])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if record.id in line)
    assert row.endswith("…") and "END" not in row
    shown = runner.invoke(main, ["dlq", "show", record.id])
    assert shown.exit_code == 0, shown.output
    (line,) = [line for line in shown.output.splitlines() if "[bad_request]:" in line]
    assert line.endswith(long)


def test_a_worker_of_an_unknown_family_is_refused_naming_the_families() -> None:
    out = CliRunner().invoke(main, ["worker", "gpt"], prog_name="agentjobs")
    assert out.exit_code == 2, out.output
    assert out.output.startswith("Usage: agentjobs worker [OPTIONS] FAMILY\n")
    (error,) = [line for line in out.output.splitlines() if line.startswith("Error:")]
    # click's wording of the choices differs between its versions: each is named
    assert error.startswith("Error: Invalid value for 'FAMILY': 'gpt' is not one of ")
    assert all(f"'{family}'" in error for family in ("haiku", "sonnet", "opus", "tools"))
