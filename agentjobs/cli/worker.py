"""``agentjobs worker FAMILY``: a Celery worker for one model family's queue.

Equal to ``celery -A agentjobs worker -Q claude.FAMILY -P threads -c N -n FAMILY@%h``.
Claude calls are I/O bound (2-30 s each), so the threads pool with many threads is the
default; every other celery worker flag passes through unchanged and wins over ours.

Every worker, however started (this command, ``celery -A agentjobs worker``, an
embedded one), runs ``Preflight`` first: one that could only dead-letter its tasks (no
credentials and no simulator, a malformed API URL) does not start.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentjobs import catalog
from agentjobs.settings import get_settings


def worker_argv(family: str, extra: Sequence[str] = ()) -> list[str]:
    """The celery worker argv for a family; flags in ``extra`` override the defaults."""
    if family not in catalog.FAMILIES:
        raise ValueError(f"family must be one of {', '.join(catalog.FAMILIES)}, got {family!r}")
    given = set()
    for arg in extra:
        given.add(arg.split("=", 1)[0])
    argv = ["worker"]
    if not given & {"-Q", "--queues"}:
        argv += ["-Q", catalog.queue_for(family)]
    if not given & {"-P", "--pool"}:
        argv += ["-P", "threads"]
    if not given & {"-c", "--concurrency", "--autoscale"}:
        argv += ["-c", str(get_settings().worker_concurrency)]
    if not given & {"-n", "--hostname"}:
        argv += ["-n", f"{family}@%h"]
    return [*argv, *extra]


def run_worker(family: str, extra: Sequence[str] = ()) -> None:
    from agentjobs.worker.app import app

    app.worker_main(worker_argv(family, extra))
