"""``pytest --agentjobs-eval CASES.jsonl``: each eval case a test item (docs/evals.md).

Hooks of agentjobs' pytest plugin (``pytest_plugin`` re-exports them). Without
``--agentjobs-eval`` they add an option group and do nothing else. With it, the cases
file is collected (alone, unless paths are given too) as one item per case; an item
runs its case through the workers the environment points at (or, with
``--agentjobs-eval-local``, a private Redis, the simulator and a worker started once
for the session), checks its expectations and compares its p95 latency and cost with
``--agentjobs-eval-baseline``. A failing item names the figure, the baseline and now.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agentjobs.evals.cases import Case
    from agentjobs.evals.runner import CaseResult

_STACK = pytest.StashKey[contextlib.ExitStack]()
_RESULTS: pytest.StashKey[list[CaseResult]] = pytest.StashKey()
_FAILED = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agentjobs", "agentjobs evals")
    group.addoption(
        "--agentjobs-eval",
        metavar="CASES",
        help="Run the eval cases of this JSONL file, one test item per case.",
    )
    group.addoption(
        "--agentjobs-eval-baseline",
        metavar="FILE",
        help="Fail a case whose p95 latency or cost grew past the allowed share of this "
        "baseline's.",
    )
    group.addoption(
        "--agentjobs-eval-max-regression",
        type=float,
        default=0.2,
        metavar="SHARE",
        help="Allowed growth of p95 latency and cost (default 0.2).",
    )
    group.addoption(
        "--agentjobs-eval-write-baseline",
        metavar="FILE",
        help="Write the figures of the cases run as a new baseline at the end.",
    )
    group.addoption(
        "--agentjobs-eval-local",
        action="store_true",
        help="Start a private Redis, the simulator and a worker for the session "
        "(as agentjobs eval --local).",
    )


def configure(config: pytest.Config) -> None:
    """With ``--agentjobs-eval`` and no paths on the command line: collect only the cases."""
    cases = config.getoption("agentjobs_eval", None)
    if not cases:
        return
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(Path(cases).resolve())]
    config.stash[_RESULTS] = []


def unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(_STACK, None)
    if stack is not None:
        del config.stash[_STACK]
        stack.close()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    cases = parent.config.getoption("agentjobs_eval", None)
    if cases and file_path.resolve() == Path(cases).resolve():
        return EvalFile.from_parent(parent, path=file_path)
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("agentjobs_eval_write_baseline", None)
    results = session.config.stash.get(_RESULTS, None)
    if path and results:
        from agentjobs.evals import baseline

        baseline.write(path, results)


class EvalFailed(Exception):
    """A case's expectations or gated figures failed; the lines say which."""


class EvalFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from agentjobs.errors import EvalError
        from agentjobs.evals import baseline, cases

        folder = str(self.path.resolve().parent)  # agent modules beside the cases file
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            loaded = cases.load(self.path)
            path = self.config.getoption("agentjobs_eval_baseline", None)
            known = baseline.read(path) if path else None
        except EvalError as exc:
            raise self.CollectError(str(exc)) from None
        for case in loaded:
            yield EvalItem.from_parent(self, name=case.name, case=case, known=known)


class EvalItem(pytest.Item):
    def __init__(self, *, case: Case, known: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.known = known

    def runtest(self) -> None:
        from agentjobs.evals.runner import run_case
        from agentjobs.evals.suite import judge

        _services(self.config)
        result = run_case(self.case)
        self.config.stash[_RESULTS].append(result)
        f = result.figures()
        self.user_properties += [(k, v) for k, v in f.items()]
        share = float(self.config.getoption("agentjobs_eval_max_regression"))
        report = judge([result], self.known, share)
        if not report.passed:
            raise EvalFailed("\n".join(report.reasons()))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, EvalFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = int(self.case.where.rpartition(":")[2] or 0)
        return self.path, line - 1, f"eval case {self.case.name}"


def _services(config: pytest.Config) -> None:
    """With ``--agentjobs-eval-local``, the local services, started at the first case.
    If they cannot start, every case fails with why (none falls back to the shell's
    broker)."""
    if not config.getoption("agentjobs_eval_local"):
        return
    if _FAILED in config.stash:
        raise EvalFailed(f"the local services did not start: {config.stash[_FAILED]}")
    if _STACK in config.stash:
        return
    from agentjobs.contrib.local import local_services
    from agentjobs.evals.cases import agent_modules, load, resolve_agent

    path = Path(config.getoption("agentjobs_eval")).resolve()
    every = load(path)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)

    def prepare() -> None:
        for c in every:
            if c.agent is not None:
                resolve_agent(c)

    stack = contextlib.ExitStack()
    try:
        stack.enter_context(local_services(agent_modules(every), [folder], prepare=prepare))
    except Exception as exc:
        stack.close()
        config.stash[_FAILED] = f"{type(exc).__name__}: {exc}"
        raise EvalFailed(f"the local services did not start: {config.stash[_FAILED]}") from None
    config.stash[_STACK] = stack
