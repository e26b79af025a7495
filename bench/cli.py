"""Benchmark: how long ``agentjobs --help`` takes, against starting Python at all.

Each command is a fresh process, as a shell runs it, timed from spawn to exit (wall
clock); rounds alternate the commands so each sees the same machine, after one warm-up
run of each (bytecode compiled, files in the page cache):

- ``python -c pass``: the floor, the interpreter's own start-up;
- ``python -m agentjobs --help`` and the ``agentjobs --help`` console script;
- ``agentjobs sim --help`` and ``agentjobs stats --help``: a sub-command's help loads
  that sub-command only (stats loads the limiter and the Anthropic SDK);
- with ``--against REV``: ``python -m agentjobs --help`` of that commit, from
  ``git archive`` (e.g. the last commit before the lazy group).

Reported: the median and the 90th percentile per command, and the median against the
floor's. Target: ``agentjobs --help`` under 300 ms.

    .venv/bin/python bench/cli.py [--runs 20] [--against REV] [--no-docs]

Writes its section of docs/benchmarks.md between the cli markers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import machine, markers, write_section

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.3
FLOOR = "python -c pass"


def commands(against: Path | None) -> dict[str, tuple[list[str], str]]:
    """Name -> (argv, PYTHONPATH): this checkout's code, or ``against``'s."""
    py, here = sys.executable, str(ROOT)
    out = {
        FLOOR: ([py, "-c", "pass"], here),
        "python -m agentjobs --help": ([py, "-m", "agentjobs", "--help"], here),
    }
    script = Path(py).with_name("agentjobs")  # the console script of this venv
    if script.exists():
        out["agentjobs --help"] = ([str(script), "--help"], here)
    out["agentjobs sim --help"] = ([py, "-m", "agentjobs", "sim", "--help"], here)
    out["agentjobs stats --help"] = ([py, "-m", "agentjobs", "stats", "--help"], here)
    if against is not None:
        out[f"python -m agentjobs --help at {against.name}"] = (
            [py, "-m", "agentjobs", "--help"],
            str(against),
        )
    return out


def checkout(rev: str, into: Path) -> Path:
    """The package and celeryconfig.py of commit ``rev``, in ``into/rev``."""
    tree = into / rev
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", rev, "agentjobs", "celeryconfig.py"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def run_once(argv: list[str], pythonpath: str, cwd: str) -> float:
    # The measured tree first on the path, whatever the venv's editable install points at;
    # the cwd is empty, so `python -m` finds nothing else.
    env = {**os.environ, "PYTHONPATH": pythonpath}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-500:]!r}")
    return elapsed


def p90(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, round(0.9 * (len(xs) - 1)))]


def commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        diff = ["git", "diff", "--quiet", "HEAD", "--", "agentjobs/cli", "agentjobs/__init__.py"]
        dirty = subprocess.run(diff, cwd=ROOT).returncode != 0
    except OSError:
        return "unknown"
    return (sha or "unknown") + (" with uncommitted changes to the code measured" if dirty else "")


def render(times: dict[str, list[float]], args: argparse.Namespace, elapsed: float) -> str:
    start, end = markers("cli")
    floor = statistics.median(times[FLOOR])
    against = f" --against {args.against}" if args.against else ""
    lines = [
        start,
        "## CLI start-up",
        "",
        f"Command: `.venv/bin/python bench/cli.py --runs {args.runs}{against}`",
        f"Date: {datetime.date.today()}; commit {commit()}; machine: {machine()}; "
        f"whole run {elapsed:.0f} s.",
        "Setup: each command a fresh process, timed from spawn to exit; rounds alternate "
        f"the commands, {args.runs} runs of each after one warm-up run.",
        "",
        "| command | median ms | p90 ms | median / `python -c pass` |",
        "|---|---:|---:|---:|",
    ]
    for name, xs in times.items():
        med = statistics.median(xs)
        lines.append(f"| `{name}` | {med * 1000:.0f} | {p90(xs) * 1000:.0f} | {med / floor:.1f} |")
    helps = [n for n in times if n in ("python -m agentjobs --help", "agentjobs --help")]
    worst = max(statistics.median(times[n]) for n in helps)
    met = "meets" if worst < TARGET_S else "misses"
    lines += [
        "",
        f"Target: `agentjobs --help` under {TARGET_S * 1000:.0f} ms: this run {met} it "
        f"(slowest median {worst * 1000:.0f} ms). The group lists its sub-commands from a "
        "table and imports none of them; a sub-command's `--help` loads that one only: "
        "`stats` reads the limiter's pauses (agentjobs.limiter.pause), whose admission "
        "module imports the Anthropic SDK, most of that row; `sim` loads aiohttp "
        "(agentjobs.simulator imports its runner).",
        "Figures from one run on a machine shared with other work: load stretches every "
        "row alike, which the ratio to `python -c pass` takes out; a wall-clock bound "
        "would be a flaky test, so tests/test_cli.py checks what is imported instead.",
        end,
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=20, help="timed runs of each command")
    p.add_argument("--against", metavar="REV", help="also time --help of this commit")
    p.add_argument("--no-docs", action="store_true", help="print only")
    args = p.parse_args()
    t0 = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="agentjobs-bench-cli-"))
    try:
        against = checkout(args.against, scratch) if args.against else None
        cmds = commands(against)
        cwd = scratch / "cwd"
        cwd.mkdir()
        for argv, path in cmds.values():  # warm-up: compile, fill the page cache
            run_once(argv, path, str(cwd))
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for i in range(args.runs):
            for name, (argv, path) in cmds.items():
                times[name].append(run_once(argv, path, str(cwd)))
            print(f"round {i + 1}/{args.runs}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    section = render(times, args, time.monotonic() - t0)
    print(section)
    if not args.no_docs:
        start, end = markers("cli")
        write_section(section, start, end)


if __name__ == "__main__":
    main()
