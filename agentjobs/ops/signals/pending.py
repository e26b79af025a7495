"""The metrics update a task's thread holds for its next script call.

A task's own figures need not be written the moment they are known: each is held in
the task's thread and rides along with the next metrics call that must happen
anyway, so it costs no round trip of its own:

- the start (``tasks_started``, ``queue_wait_seconds``) waits for the task's Messages
  API call, and is written in the call that marks it in flight; a task that makes no
  call (a stored outcome, a cache hit, a refusal) writes it with its outcome;
- the call's figures (status, tokens, cost, duration; the in-flight mark dropped) wait
  for the task's outcome, and are written atomically with it.

So ``tasks_started`` appears when the task's call starts (its ``queue_wait_seconds``
is still measured at the start of the task), and a call's figures appear with its
task's outcome, a few milliseconds after the answer; a worker killed in between
loses what it held, as one killed during the call does.
"""

from __future__ import annotations

import threading

from agentjobs.ops import metrics

_local = threading.local()


def hold(update: metrics.Update) -> None:
    """Hold ``update`` for this thread's next metrics call (one already held goes now)."""
    earlier: metrics.Update | None = getattr(_local, "update", None)
    if earlier is not None:
        earlier.commit()
    _local.update = update


def take() -> metrics.Update:
    """The update held by this thread (the thread holds none after), else a new one."""
    held: metrics.Update | None = getattr(_local, "update", None)
    _local.update = None
    return held if held is not None else metrics.Update()


def flush() -> None:
    """Write what this thread holds now (a task that ended without an outcome signal)."""
    held: metrics.Update | None = getattr(_local, "update", None)
    if held is not None:
        _local.update = None
        held.commit()
