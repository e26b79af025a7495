"""Evals (issue 15): cases, expectations, baselines, the report, ``agentjobs eval`` and
``pytest --agentjobs-eval``, run through a real in-process worker (the claude.* queues
and agentjobs.tools), the private Redis and the simulator over HTTP.

Latency assertions hold because the simulator's latency dominates: every answer takes
200 ms (no spread, output not paced), against a few ms of overhead; "three times
slower" is 600 ms, far past 20% more. Cost depends on tokens only, so it is exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import agentjobs.agents.tasks  # noqa: F401  (registers the loop's tasks on the app)
from agentjobs.cli import main
from agentjobs.contrib.pytest_plugin import all_queues, in_process_worker, purge
from agentjobs.errors import EvalError
from agentjobs.evals import baseline, cases
from agentjobs.evals.cases import Case, Expect
from agentjobs.evals.expect import Outcome, check
from agentjobs.evals.report import Report
from agentjobs.evals.runner import CaseResult, Run, percentile
from agentjobs.evals.suite import evaluate

QUEUES = (*all_queues(), "agentjobs.tools")
LATENCY_MS = 200


def line(name: str, **fields: Any) -> str:
    data = {"name": name, "repeat": 6, "warmup": 1, **fields}
    data.setdefault("request", {"prompt": f"Tell me about {name}.", "model": "haiku"})
    return json.dumps(data)


def write_cases(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# -- cases: one-line errors naming file:line ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not JSON"),
        ('["a"]', "a case is a JSON object"),
        ('{"name": "x"}', "give exactly one of 'request'"),
        ('{"name": "x", "request": {"prompt": "hi"}, "agent": "m:a"}', "exactly one"),
        ('{"name": "x", "agent": "m:a"}', "needs 'input'"),
        ('{"name": "x", "request": {"prompt": "hi", "model": "gpt-9"}}', "request:"),
        ('{"name": "x", "request": {"prompt": "hi"}, "expect": {"contain": "a"}}', "contain"),
        ('{"name": "x", "request": {"prompt": "hi"}, "repeat": 0}', "repeat"),
        ('{"name": "x y", "request": {"prompt": "hi"}}', "name"),
        ('{"name": "x", "request": {"prompt": "hi"}, "expect": {"schema": {"type": 3}}}', "JSON"),
        ('{"name": "x", "agent": "no colon", "input": "hi"}', "module:attribute"),
    ],
)
def test_a_bad_case_is_one_line_naming_file_and_line(tmp_path: Path, text: str, says: str) -> None:
    path = write_cases(tmp_path / "c.jsonl", line("good"), "", text)
    with pytest.raises(EvalError) as err:
        cases.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3") and says in message and "\n" not in message


def test_cases_parse_and_a_duplicate_name_is_refused(tmp_path: Path) -> None:
    path = write_cases(
        tmp_path / "c.jsonl",
        "# a comment",
        line("a", expect={"stop_reason": "end_turn", "contains": "x", "tool_called": "t"}),
        line("b", agent="mod:agent", input="hi", request=None),
    )
    path.write_text(path.read_text().replace('"request": null, ', ""))
    a, b = cases.load(path)
    assert (a.kind, b.kind, a.where) == ("request", "agent", f"{path}:2")
    assert a.expect.stop_reason == ["end_turn"] and a.expect.tool_called == ["t"]
    assert a.kwargs()["cache"] is False  # a cached repeat would measure the cache
    assert cases.agent_modules([a, b]) == ["mod"]
    write_cases(path, line("a"), line("a"))
    with pytest.raises(EvalError, match=r"c.jsonl:2: case 'a' again \(first at .*:1\)"):
        cases.load(path)
    with pytest.raises(EvalError, match="cannot read"):
        cases.load(tmp_path / "missing.jsonl")


# -- expectations, percentiles, comparisons: pure -------------------------------------------


def test_each_expectation_fails_alone() -> None:
    good = Outcome(
        text='{"city": "Paris"}',
        stop_reason="end_turn",
        tools=["lookup"],
        steps=3,
        cost_usd=0.002,
    )
    every = Expect.model_validate(
        {
            "stop_reason": ["end_turn", "max_tokens"],
            "status": "completed",
            "contains": "Paris",
            "schema": {"type": "object", "required": ["city"]},
            "tool_called": "lookup",
            "tool_not_called": "refund",
            "max_steps": 3,
            "max_cost_usd": 0.002,
        }
    )
    assert check(every, good) == []
    bad = {
        "stop_reason": ("stop_reason", "tool_use"),
        "status": ("status", "failed"),
        "contains": ("text", "Rome"),
        "schema": ("text", '{"town": "Paris"}'),
        "tool_called": ("tools", []),
        "tool_not_called": ("tools", ["lookup", "refund"]),
        "max_steps": ("steps", 4),
        "max_cost_usd": ("cost_usd", 0.0021),
    }
    for field, (attr, value) in bad.items():
        out = Outcome(**{**good.__dict__, attr: value})
        failed = check(every, out)
        assert len(failed) == (2 if field == "contains" else 1), (field, failed)
    assert check(Expect(), Outcome(text="not json", error="TimeoutError: late")) == [
        "run failed: TimeoutError: late"
    ]
    assert "not JSON" in check(Expect.model_validate({"schema": {}}), Outcome(text="x"))[0]


def test_percentile_interpolates() -> None:
    assert percentile([], 95) == 0.0
    assert percentile([1.0], 95) == 1.0
    assert percentile([float(i) for i in range(1, 21)], 95) == pytest.approx(19.05)
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def result_of(name: str, latencies: list[float], cost: float) -> CaseResult:
    case = Case.model_validate({"name": name, "request": {"prompt": "hi"}})
    r = CaseResult(case)
    r.runs = [Run(s, Outcome(cost_usd=cost), []) for s in latencies]
    return r


def test_compare_gates_p95_and_cost_past_the_share(tmp_path: Path) -> None:
    before = [result_of("a", [0.2] * 10, 0.001), result_of("b", [0.2] * 10, 0.001)]
    path = tmp_path / "base.json"
    baseline.write(path, before, concurrency=2)
    known = baseline.read(path)
    assert known["cases"]["a"]["p95_s"] == 0.2 and known["concurrency"] == 2
    same, notes = baseline.compare(before, known, 0.2, concurrency=2)
    assert same == [] and notes == []
    now = [
        result_of("a", [0.2] * 9 + [0.2, 0.6, 0.6], 0.001),  # p95 0.6
        result_of("b", [0.23] * 10, 0.0013),  # +15% p95: allowed; +30% cost: not
        result_of("c", [0.2], 0.1),
    ]
    regressions, notes = baseline.compare(now, known, 0.2, concurrency=1)
    assert [(g.case, g.figure) for g in regressions] == [("a", "p95_s"), ("b", "cost_usd")]
    assert regressions[0].text() == "a: p95_s 0.6 s vs baseline 0.2 s (+200%)"
    assert regressions[1].baseline == 0.001 and regressions[1].now == 0.0013
    assert any("c: no baseline" in n for n in notes) and any("2 at once" in n for n in notes)
    loose, _ = baseline.compare(now, known, 3.0)
    assert loose == []
    # tiny absolute growth is timer noise, not a regression
    tiny, _ = baseline.compare(
        [result_of("a", [0.205] * 10, 0.001)],
        {"cases": {"a": {"p95_s": 0.0001, "cost_usd": 0.001}}},
    )
    assert [g.figure for g in tiny] == ["p95_s"]
    tiny, _ = baseline.compare(
        [result_of("a", [0.008] * 10, 0.001)], {"cases": {"a": {"p95_s": 0.002, "cost_usd": 0.001}}}
    )
    assert tiny == []


def test_a_bad_baseline_file_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    for text, says in [
        ("{", "not JSON"),
        ("[]", "no 'cases'"),
        ('{"version": 9, "cases": {}}', "version"),
        ('{"version": 1, "cases": {"a": {"p95_s": 1}}}', "lacks"),
    ]:
        p.write_text(text)
        with pytest.raises(EvalError, match=says):
            baseline.read(p)
    with pytest.raises(EvalError, match="cannot read the baseline"):
        baseline.read(tmp_path / "none.json")


def test_the_report_names_case_figure_baseline_and_now(tmp_path: Path) -> None:
    before = [result_of("slow", [0.2] * 10, 0.001), result_of("fine", [0.1] * 10, 0.002)]
    known = baseline.build(before)
    now = [result_of("slow", [0.6] * 10, 0.001), result_of("fine", [0.1] * 10, 0.002)]
    now[1].runs[0].failures = ["text does not contain 'x'"]
    regressions, notes = baseline.compare(now, known)
    report = Report(now, known, regressions, notes)
    assert not report.passed
    assert report.reasons() == [
        "regression: slow: p95_s 0.6 s vs baseline 0.2 s (+200%)",
        "expectation: fine: text does not contain 'x' (1/10 runs)",
    ]
    assert [r[-1] for r in report.rows()] == ["FAIL p95", "FAIL expect"]
    data = report.as_dict()
    assert data["regressions"][0] == {
        "case": "slow",
        "figure": "p95_s",
        "baseline": 0.2,
        "now": 0.6,
        "change": 2.0,
    }
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    report.write(md)
    report.write(html)
    text = md.read_text()
    assert text.count("<svg") == 2 and "| slow | 10 | 600 | 600 | 200 |" in text
    assert "#d93025" in text  # the regressed bar in red
    page = html.read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") == 2
    assert "<td>slow</td>" in page


# -- end to end: a real worker and the simulator --------------------------------------------


@pytest.fixture(scope="module")
def module_worker(agentjobs_redis: Any, agentjobs_sim_server: Any) -> Iterator[Any]:
    """One in-process worker on the claude.* queues and agentjobs.tools for the module."""
    purge(QUEUES)
    with in_process_worker(QUEUES, concurrency=8) as worker:
        yield worker
    purge(QUEUES)


@pytest.fixture
def slow_sim(module_worker: Any, state_redis: Any, fresh_sim: Any) -> Any:
    """Every answer takes LATENCY_MS, output not paced, answers 40-60 tokens."""
    fresh_sim.configure(
        latency_median_ms=LATENCY_MS,
        latency_spread=0.0,
        output_tokens_per_s=0,
        output_tokens_min=40,
        output_tokens_max=60,
    )
    return fresh_sim


def suite(tmp_path: Path, *extra: str) -> list[Case]:
    return cases.load(
        write_cases(
            tmp_path / "cases.jsonl",
            line("short", expect={"stop_reason": "end_turn", "max_steps": 1}),
            line("sonnet", request={"prompt": "Summarise a play.", "model": "sonnet"}),
            *extra,
        )
    )


def test_a_baseline_written_then_the_same_run_passes(tmp_path: Path, slow_sim: Any) -> None:
    loaded = suite(tmp_path)
    path = tmp_path / "baseline.json"
    first = evaluate(loaded, write_baseline=path, concurrency=3)
    assert first.passed and first.baseline is None
    known = json.loads(path.read_text())
    for name in ("short", "sonnet"):
        figures = known["cases"][name]
        assert figures["runs"] == 6 and figures["steps"] == 1
        assert figures["p95_s"] >= LATENCY_MS / 1000 and figures["cost_usd"] > 0
        assert figures["output_tokens"] >= 40
    # warm-up runs are made but not measured: 2 cases x (1 + 6)
    assert slow_sim.stats()["requests"] == 14
    # The same run again: its p95 of 6 runs moves with the machine's load (+26% seen
    # on a loaded machine), so the gate is set above that noise, as docs/evals.md says
    # to choose it; the tests below show 0.2 catching a threefold slowdown.
    again = evaluate(loaded, baseline=path, concurrency=3, max_regression=1.0)
    assert again.passed, again.reasons()
    assert again.regressions == [] and again.notes == []


def test_the_simulator_three_times_slower_fails_on_p95(tmp_path: Path, slow_sim: Any) -> None:
    loaded = suite(tmp_path)
    path = tmp_path / "baseline.json"
    evaluate(loaded, write_baseline=path, concurrency=3)
    slow_sim.configure(latency_median_ms=3 * LATENCY_MS)
    report = evaluate(loaded, baseline=path, concurrency=3)
    assert not report.passed
    assert {(g.case, g.figure) for g in report.regressions} == {
        ("short", "p95_s"),
        ("sonnet", "p95_s"),
    }
    for g in report.regressions:
        assert g.now > 2 * g.baseline
        assert g.text().startswith(f"{g.case}: p95_s ") and "vs baseline" in g.text()
    assert not report.failed_expectations  # slower, not wrong


def test_longer_answers_fail_on_cost(tmp_path: Path, slow_sim: Any) -> None:
    loaded = suite(tmp_path)
    path = tmp_path / "baseline.json"
    evaluate(loaded, write_baseline=path, concurrency=3)
    slow_sim.configure(output_tokens_min=200, output_tokens_max=240)
    report = evaluate(loaded, baseline=path, concurrency=3)
    figures = {(g.case, g.figure) for g in report.regressions}
    assert {("short", "cost_usd"), ("sonnet", "cost_usd")} == figures
    assert not report.passed and not report.failed_expectations


def test_a_failed_expectation_fails_the_run(tmp_path: Path, slow_sim: Any) -> None:
    loaded = suite(
        tmp_path,
        line("wrong", expect={"contains": "zebra", "max_cost_usd": 0.0, "stop_reason": "x"}),
        line(
            "tool",
            request={
                "prompt": "What is the weather in Oslo?",
                "model": "haiku",
                "tools": [
                    {
                        "name": "weather",
                        "description": "Weather.",
                        "input_schema": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    }
                ],
            },
            expect={
                "tool_called": "weather",
                "tool_not_called": "other",
                "stop_reason": "tool_use",
            },
        ),
        line("error", request={"prompt": "[[sim:error=400]] no", "model": "haiku"}),
    )
    report = evaluate(loaded, concurrency=3)
    assert not report.passed and report.regressions == []
    failed = report.failed_expectations
    assert set(failed) == {"wrong", "error"}
    assert "text does not contain 'zebra' (6/6 runs)" in failed["wrong"]
    assert any(f.startswith("stop_reason end_turn, expected x") for f in failed["wrong"])
    assert any(f.startswith("cost ") for f in failed["wrong"])
    assert failed["error"][0].startswith("run failed: DeadLetteredError")


AGENT_MODULE = '''
from agentjobs.agents.agent import Agent
from agentjobs.agents.tool import tool

@tool
def look_up(word: str) -> str:
    """Look a word up."""
    return "a word"

agent = Agent("eval_lookup", model="haiku", system="[[sim:tool_rounds=1]] Use look_up.",
              tools=[look_up], max_steps=4)
'''


def test_an_agent_case_through_sessions(
    tmp_path: Path, slow_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "eval_agent_mod.py").write_text(textwrap.dedent(AGENT_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = cases.load(
        write_cases(
            tmp_path / "agent.jsonl",
            json.dumps(
                {
                    "name": "lookup",
                    "agent": "eval_agent_mod:agent",
                    "input": "What is a word?",
                    "repeat": 3,
                    "warmup": 0,
                    "expect": {"status": "completed", "tool_called": "look_up", "max_steps": 2},
                }
            ),
            json.dumps(
                {
                    "name": "too-few-steps",
                    "agent": "eval_agent_mod:agent",
                    "input": "Again?",
                    "repeat": 1,
                    "warmup": 0,
                    "expect": {"max_steps": 1, "tool_not_called": "look_up"},
                }
            ),
        )
    )
    report = evaluate(loaded, concurrency=3)
    ok, bad = report.results
    assert ok.passed, ok.failures()
    figures = ok.figures()
    assert figures["steps"] == 2 and figures["cost_usd"] > 0
    # two model calls of LATENCY_MS each, to the session's end
    assert figures["p50_s"] >= 2 * LATENCY_MS / 1000
    assert sorted(bad.failures()) == [
        "2 steps, at most 1 expected (1/1 runs)",
        "tool look_up called (1/1 runs)",
    ]


# -- the command and the pytest hook --------------------------------------------------------


def test_the_command_exit_codes_json_and_report(tmp_path: Path, slow_sim: Any) -> None:
    runner = CliRunner()
    path = write_cases(tmp_path / "c.jsonl", line("short"))
    base, md = tmp_path / "b.json", tmp_path / "r.md"
    out = runner.invoke(main, ["eval", str(path), "--write-baseline", str(base), "-c", "3"])
    assert out.exit_code == 0, out.output
    assert "short" in out.output and "eval passed: 1 cases" in out.output
    assert "no worker answered" not in out.stderr  # the in-process worker answers pings
    out = runner.invoke(main, ["eval", str(path), "--baseline", str(base), "--json", "-c", "3"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["passed"] and data["cases"][0]["baseline"]["runs"] == 6
    slow_sim.configure(latency_median_ms=3 * LATENCY_MS)
    args = ["eval", str(path), "--baseline", str(base), "--report", str(md), "-c", "3"]
    out = runner.invoke(main, args)
    assert out.exit_code == 1, out.output
    assert "regression: short: p95_s" in out.output and "eval FAILED" in out.output
    assert "<svg" in md.read_text()
    # a bad cases file or baseline: 2, one line, nothing run
    requests = slow_sim.stats()["requests"]
    bad = write_cases(tmp_path / "bad.jsonl", line("a"), "{")
    out = runner.invoke(main, ["eval", str(bad)])
    assert out.exit_code == 2 and out.stderr.strip() == (
        f"Error: {bad}:2: not JSON: Expecting property name enclosed in double quotes (column 2)"
    )
    (tmp_path / "nb.json").write_text("[]")
    out = runner.invoke(main, ["eval", str(path), "--baseline", str(tmp_path / "nb.json")])
    assert out.exit_code == 2 and "no 'cases'" in out.stderr
    assert slow_sim.stats()["requests"] == requests
    help_text = runner.invoke(main, ["eval", "--help"]).output
    assert "Exit status: 0" in help_text and "--max-regression" in help_text


def test_pytest_hook_one_item_per_case(tmp_path: Path, slow_sim: Any) -> None:
    """`pytest --agentjobs-eval` in a subprocess, against this test's worker (the
    subprocess inherits the private Redis and the simulator from the environment)."""
    path = write_cases(
        tmp_path / "c.jsonl",
        line("short", repeat=3),
        line("wrong", repeat=2, expect={"contains": "zebra"}),
    )
    base = tmp_path / "b.json"
    env = {**os.environ, "PYTEST_ADDOPTS": ""}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf"]
    args = ["--agentjobs-eval", str(path), "--agentjobs-eval-write-baseline", str(base)]
    proc = subprocess.run(
        cmd + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout
    assert "text does not contain 'zebra' (2/2 runs)" in proc.stdout
    assert set(json.loads(base.read_text())["cases"]) == {"short", "wrong"}
