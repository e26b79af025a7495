"""The task path: the ordered steps of a worker's call, and of a submit.

Each step is a function ``step(call, next)`` of its own module: it does its part,
calls ``next(call)`` for the rest of the path and returns what that returns (or
answers without calling it: a stored outcome, a cache hit). A step that takes a
lease, a reservation or a slot releases it when ``next`` returns or raises, so they
are released in the reverse order of taking, as dramatiq's middleware are called.

    batch lane -> claim -> route -> cache -> budget -> record -> pause -> admit -> send

To add a step (a streaming transport, a batch lane, an agent's ceiling), write it in
the module of its concept and put it in the list where it belongs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agentjobs.api.send import send
from agentjobs.call import Call
from agentjobs.errors import RequestError
from agentjobs.lanes.step import to_batch
from agentjobs.limiter.admission import admit
from agentjobs.limiter.pause import check_pause
from agentjobs.reliability.claim import claim
from agentjobs.spend.budget import check_budget, hold_budget
from agentjobs.spend.cache import respond_from_cache
from agentjobs.spend.cost import record_cost
from agentjobs.spend.routing import route

Next = Callable[[Call], Any]
Step = Callable[[Call, Next], Any]

#: What a worker does with one ``complete`` task, outermost first.
WORKER_STEPS: tuple[Step, ...] = (
    to_batch,  # the batch lane: the request waits for a Message Batch, the task ends
    claim,  # idempotency: a stored outcome, a step aside, or the lease; retry | dead letter
    route,  # model="auto": pick the model, say why
    respond_from_cache,  # a stored answer of an identical request, or single flight
    hold_budget,  # reserve the estimated cost, or reject / downgrade / defer
    record_cost,  # add the call's real cost to the day's totals
    check_pause,  # a spend-paused group: no call (admit's acquire reads the pause)
    admit,  # the global limiter: reserve RPM + ITPM + OTPM and a slot, sleep the wait
    send,  # the Messages API call, the ClaudeResult
)


def _queue(call: Call, next: Next) -> Any:
    """Fix the queue from the model family; a hand-picked queue that disagrees is refused."""
    queue = call.queue
    given = call.options.get("queue")
    if given is not None and getattr(given, "name", given) != queue:
        raise RequestError(
            f"queue {given!r} does not serve model {call.request.model}; agentjobs routes "
            f"by model family ({queue}): leave queue unset"
        )
    call.options["queue"] = queue
    return next(call)


#: What ``complete.apply_async`` does before it publishes, outermost first.
SUBMIT_STEPS: tuple[Step, ...] = (
    route,  # model="auto" is decided in the caller, and the reason travels
    check_budget,  # over a daily cap: BudgetExceededError now, or a downgrade
    _queue,  # the family's queue
)


def run(steps: Sequence[Step], call: Call, last: Next) -> Any:
    """Run ``call`` through ``steps``, then ``last``; what the outermost step returns."""

    def at(i: int) -> Next:
        if i == len(steps):
            return last
        step, rest = steps[i], at(i + 1)
        return lambda c: step(c, rest)

    return at(0)(call)


def _end(call: Call) -> Any:
    raise RuntimeError("the send step is the last: nothing comes after it")


def execute(task: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """One ``complete`` task on a worker: its ClaudeResult dict (or a raised failure)."""
    return run(WORKER_STEPS, Call(kwargs, task=task), _end)
