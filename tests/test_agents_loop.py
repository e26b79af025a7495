"""The loop's rules, each through real in-process workers, Redis and the simulator:
ceilings stop a session before the call that would pass them (the simulator's request
count says no call was made past them), tool errors and invalid inputs go back to the
model, approvals pause without a worker, hand-offs, cancel, stop reasons
(test_agents_redelivery.py: a task run again makes no second call)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

import agentjobs.agents.tasks  # noqa: F401  (registers the loop's tasks on the app)
from agentjobs.agents import control
from agentjobs.agents.agent import Agent
from agentjobs.agents.handoff import Handoff
from agentjobs.agents.stores import session_store
from agentjobs.agents.tool import tool
from agentjobs.contrib.pytest_plugin import all_queues, in_process_worker, purge
from agentjobs.contrib.testing import wait_for
from agentjobs.errors import RequestError, SessionStateError
from agentjobs.messages.request import parse_request
from agentjobs.ops import session_metrics
from agentjobs.spend.budget import estimate_usd

QUEUES = (*all_queues(), "agentjobs.tools")
CALLS: Counter[str] = Counter()
KEYS: list[str] = []
GATE = threading.Event()


@tool
def lookup(word: str) -> dict[str, str]:
    """Look a word up in the dictionary."""
    CALLS["lookup"] += 1
    return {"word": word, "meaning": "a thing that repeats"}


@tool
def broken(word: str) -> str:
    """A tool that always fails."""
    CALLS["broken"] += 1
    raise RuntimeError("the dictionary is offline")


class Booking(BaseModel):
    booking_id: str

    @field_validator("booking_id")
    @classmethod
    def _shape(cls, v: str) -> str:
        # Not in the JSON schema: the simulator's inputs (valid by the schema) fail it.
        if not v.startswith("B-"):
            raise ValueError("booking ids look like B-1234")
        return v


@tool
def get_booking(booking: Booking) -> str:
    """Look up one booking."""
    CALLS["get_booking"] += 1
    return "found"


@tool(requires_approval=True)
def refund(amount: int, idempotency_key: str) -> str:
    """Refund an amount to the customer."""
    CALLS["refund"] += 1
    KEYS.append(idempotency_key)
    return "refunded"


@tool
def wait_gate(word: str) -> str:
    """Returns once the test opens the gate."""
    CALLS["wait_gate"] += 1
    GATE.wait(timeout=30)
    return "open"


@pytest.fixture
def clean(state_redis: Any, fresh_sim: Any) -> Iterator[None]:
    CALLS.clear()
    KEYS.clear()
    GATE.clear()
    purge(QUEUES)
    yield
    GATE.set()
    purge(QUEUES)


@pytest.fixture(scope="module")
def module_worker(agentjobs_redis: Any, agentjobs_sim_server: Any) -> Iterator[Any]:
    """One in-process worker on the claude.* queues and agentjobs.tools for the module
    (each test waits for its sessions to end, so none leaves work behind)."""
    purge(QUEUES)
    with in_process_worker(QUEUES, concurrency=8) as worker:
        yield worker


@pytest.fixture
def agent_worker(module_worker: Any, clean: None) -> Any:
    return module_worker


def sim_requests(sim: Any) -> int:
    return int(sim.stats()["requests"])


def fallback(rec: dict[str, Any]) -> str:
    return f"stopped by {rec['stop_reason']} after {len(rec['steps'])} steps"


# -- ceilings ---------------------------------------------------------------------------


def test_max_steps_stops_before_the_step_past_it(agent_worker: Any, fresh_sim: Any) -> None:
    agent = Agent(
        "loop_steps",
        model="haiku",
        system="[[sim:tool_rounds=9]]",
        tools=[lookup],
        max_steps=2,
        max_tokens=256,
        on_stop=fallback,
    )
    result = agent.start("Look words up.").wait(timeout=60)
    assert (result["status"], result["stop_reason"]) == ("stopped", "max_steps")
    assert result["steps"] == 2 and sim_requests(fresh_sim) == 2
    assert result["output"] == "stopped by max_steps after 2 steps"  # on_stop's fallback
    assert CALLS["lookup"] == 2  # step 2's tool ran; step 3 was never made


def test_max_tool_calls_runs_none_of_a_turn_past_it(agent_worker: Any, fresh_sim: Any) -> None:
    agent = Agent(
        "loop_tools",
        model="haiku",
        system="[[sim:tool_rounds=9]] [[sim:parallel=2]]",
        tools=[lookup],
        max_tool_calls=3,
        max_tokens=256,
    )
    result = agent.start("Look words up.").wait(timeout=60)
    assert (result["status"], result["stop_reason"]) == ("stopped", "max_tool_calls")
    # step 1 ran its 2 calls; step 2 asked for 2 more (4 > 3): none of them ran
    assert CALLS["lookup"] == 2 and result["tool_calls"] == 2
    assert sim_requests(fresh_sim) == 2
    rec = session_store().load(result["session_id"])
    assert len(rec["tool_calls"]) == 2


def test_max_cost_stops_before_the_step_that_could_pass_it(
    agent_worker: Any, fresh_sim: Any
) -> None:
    # A small max_tokens: the estimate (all of it as output) is then close to the cost.
    agent = Agent(
        "loop_cost", model="haiku", system="[[sim:tool_rounds=20]]", tools=[lookup], max_tokens=128
    )
    first = agent.request([{"role": "user", "content": "Look words up."}], session_id="x", n=1)
    estimate = estimate_usd(parse_request(first))
    agent = Agent(
        "loop_cost",
        model="haiku",
        system="[[sim:tool_rounds=20]]",
        tools=[lookup],
        max_cost_usd=3 * estimate,
        max_steps=None,
        max_tokens=128,
    )
    result = agent.start("Look words up.").wait(timeout=60)
    assert (result["status"], result["stop_reason"]) == ("stopped", "max_cost_usd")
    rec = session_store().load(result["session_id"])
    made = len(rec["steps"])
    assert made >= 2 and sim_requests(fresh_sim) == made == result["steps"]
    assert result["cost_usd"] <= 3 * estimate
    # the step not made would have passed the ceiling with its reserved estimate
    nxt = agent.request(rec["transcript"], session_id=rec["session_id"], n=made + 1)
    assert result["cost_usd"] + estimate_usd(parse_request(nxt)) > 3 * estimate
    assert rec["reserved_usd"] == 0.0


def test_timeout_stops_before_the_next_step(agent_worker: Any, fresh_sim: Any) -> None:
    agent = Agent(
        "loop_timeout",
        model="haiku",
        system="[[sim:tool_rounds=3]]",
        tools=[wait_gate],
        timeout_s=0.5,
        max_tokens=256,
    )
    session = agent.start("Wait.")
    rec = wait_for(
        lambda: (r := session.record())["tool_calls"] and r, timeout=30, what="the tool call"
    )
    wait_for(lambda: time.time() - rec["created_at"] > 0.5, timeout=10, what="the timeout")
    GATE.set()
    result = session.wait(timeout=30)
    assert (result["status"], result["stop_reason"]) == ("stopped", "timeout")
    assert sim_requests(fresh_sim) == 1 and CALLS["wait_gate"] == 1


def test_tool_errors_go_back_until_the_ceiling(agent_worker: Any, fresh_sim: Any) -> None:
    agent = Agent(
        "loop_errors",
        model="haiku",
        system="[[sim:tool_rounds=9]]",
        tools=[broken],
        max_tool_errors=1,
        max_tokens=256,
    )
    result = agent.start("Try.").wait(timeout=60)
    assert (result["status"], result["stop_reason"]) == ("stopped", "max_tool_errors")
    # the first error went back to the model (step 2 was made); the second passed it
    assert CALLS["broken"] == 2 and sim_requests(fresh_sim) == 2
    rec = session_store().load(result["session_id"])
    first = rec["transcript"][2]["content"][0]
    assert first["is_error"] is True
    assert first["content"] == "RuntimeError: the dictionary is offline"


# -- tool input, approval, hand-off, cancel ------------------------------------------------


def test_an_invalid_input_goes_back_to_the_model(agent_worker: Any, fresh_sim: Any) -> None:
    agent = Agent(
        "loop_invalid",
        model="haiku",
        system="[[sim:tool_rounds=1]]",
        tools=[get_booking],
        max_tokens=256,
    )
    result = agent.start("Find my booking.").wait(timeout=60)
    assert result["status"] == "completed" and result["steps"] == 2
    assert CALLS["get_booking"] == 0  # the function never ran
    rec = session_store().load(result["session_id"])
    (call,) = rec["tool_calls"]
    assert (call["kind"], call["is_error"]) == ("invalid_input", True)
    assert "booking ids look like B-1234" in call["error"]
    block = rec["transcript"][2]["content"][0]
    assert block["type"] == "tool_result" and block["is_error"] is True
    assert block["content"] == call["error"]
    assert rec["tool_errors"] == 1


def _approval_agent(name: str) -> Agent:
    return Agent(
        name, model="haiku", system="[[sim:tool_rounds=1]]", tools=[refund], max_tokens=256
    )


def test_approval_pauses_without_a_task_then_runs(agent_worker: Any, fresh_sim: Any) -> None:
    session = _approval_agent("loop_approve").start("Refund me.")
    waiting = session.wait(timeout=30, until=("waiting_approval",))
    assert waiting["status"] == "waiting_approval" and CALLS["refund"] == 0
    rec = session.record()
    (call,) = rec["tool_calls"]
    assert call["status"] == "waiting_approval"
    assert sim_requests(fresh_sim) == 1

    control.approve(session.id, call["tool_use_id"], by="ops@example")
    result = session.wait(timeout=30)
    assert result["status"] == "completed" and result["steps"] == 2
    assert CALLS["refund"] == 1
    assert [f"{session.id}:1:{call['tool_use_id']}"] == KEYS
    (call,) = session.record()["tool_calls"]
    assert call["approval"]["decision"] == "approved" and call["approval"]["by"] == "ops@example"
    with pytest.raises(SessionStateError):
        control.approve(session.id)
    # what the loop reported (ops/session_metrics.py)
    figures = session_metrics.snapshot(agent="loop_approve")
    assert (figures["started"], figures["by_status"]) == (1, {"completed": 1})
    assert figures["approval_wait_s"]["count"] == 1 and figures["approval_wait_s"]["mean"] > 0
    assert figures["tools"]["refund"]["by_kind"] == {"ok": 1}


def test_a_denied_call_goes_back_as_an_error(agent_worker: Any, fresh_sim: Any) -> None:
    session = _approval_agent("loop_deny").start("Refund me.")
    session.wait(timeout=30, until=("waiting_approval",))
    control.deny(session.id, reason="over the limit", by="ops")
    result = session.wait(timeout=30)
    assert result["status"] == "completed" and CALLS["refund"] == 0
    rec = session.record()
    (call,) = rec["tool_calls"]
    assert call["status"] == "denied" and rec["tool_errors"] == 0
    block = rec["transcript"][2]["content"][0]
    assert block["is_error"] is True
    assert block["content"] == "denied by the operator: over the limit"


def test_cancel_ends_a_waiting_session(agent_worker: Any, fresh_sim: Any) -> None:
    session = _approval_agent("loop_cancel").start("Refund me.")
    session.wait(timeout=30, until=("waiting_approval",))
    rec = control.cancel(session.id, reason="customer left")
    assert rec["status"] == "cancelled"
    assert rec["tool_calls"][0]["status"] == "cancelled"
    with pytest.raises(SessionStateError):
        control.approve(session.id)
    with pytest.raises(SessionStateError):
        control.cancel(session.id)
    assert CALLS["refund"] == 0 and sim_requests(fresh_sim) == 1


def test_cancel_while_a_tool_runs_keeps_its_result(agent_worker: Any, fresh_sim: Any) -> None:
    agent = Agent(
        "loop_cancel_run",
        model="haiku",
        system="[[sim:tool_rounds=3]]",
        tools=[wait_gate],
        max_tokens=256,
    )
    session = agent.start("Wait.")
    wait_for(
        lambda: [c for c in session.record()["tool_calls"] if c["status"] == "running"],
        timeout=30,
        what="the tool call running",
    )
    assert control.cancel(session.id)["status"] == "cancelled"
    GATE.set()
    (call,) = wait_for(
        lambda: [c for c in session.record()["tool_calls"] if c["status"] == "done"],
        timeout=30,
        what="the result recorded",
    )
    assert call["output"] == "open"
    rec = session.record()
    assert rec["status"] == "cancelled" and rec["next_step"] is None
    assert sim_requests(fresh_sim) == 1  # no step after the cancel


class Transfer(BaseModel):
    booking_id: str
    summary: str


def test_a_hand_off_passes_its_payload_and_the_transcript(
    agent_worker: Any, fresh_sim: Any
) -> None:
    Agent(
        "loop_bookings",
        model="haiku",
        system="[[sim:tool_rounds=2]] You handle bookings.",
        tools=[lookup],
        max_tokens=256,
    )
    router = Agent(
        "loop_router",
        model="haiku",
        system="[[sim:tool_rounds=1]] You route.",
        handoffs=[Handoff("loop_bookings", payload=Transfer)],
        max_tokens=256,
    )
    result = router.start("I want to change my booking.").wait(timeout=60)
    assert result["status"] == "completed", result
    assert result["agent"] == "loop_bookings"
    rec = session_store().load(result["session_id"])
    assert [(c["agent"], c["from_agent"]) for c in rec["chain"]] == [
        ("loop_router", None),
        ("loop_bookings", "loop_router"),
    ]
    assert set(rec["chain"][1]["payload"]) == {"booking_id", "summary"}
    steps = rec["steps"]
    assert [s["agent"] for s in steps] == ["loop_router", "loop_bookings", "loop_bookings"]
    assert steps[0]["request"]["tools"] == ["transfer_to_loop_bookings"]
    assert steps[1]["request"]["tools"] == ["lookup"]
    # the receiving agent got the whole transcript, the payload in the hand-off's result
    assert steps[1]["request"]["messages"] == 3
    handed = rec["transcript"][2]["content"][0]
    assert '"handed_off_to":"loop_bookings"' in handed["content"]
    assert CALLS["lookup"] == 1 and sim_requests(fresh_sim) == 3


class Leg(BaseModel):
    title: str  # a field called title: not pydantic's generated one
    nights: int = 1


class Itinerary(BaseModel):
    """What the bookings agent needs: the legs, nested models in $defs."""

    legs: list[Leg]
    notes: dict[str, str] = {"title": "as given"}  # data holding a "title" key


def test_a_hand_off_with_nested_payload_models_has_no_generated_titles(
    agent_worker: Any, fresh_sim: Any
) -> None:
    Agent("loop_trips", model="haiku", system="You book trips.", max_tokens=256)
    router = Agent(
        "loop_router3",
        model="haiku",
        system="[[sim:tool_rounds=1]] You route.",
        handoffs=[Handoff("loop_trips", payload=Itinerary)],
        max_tokens=256,
    )
    schema = Handoff("loop_trips", payload=Itinerary).definition()["input_schema"]
    assert schema["$defs"]["Leg"]["properties"]["title"] == {"type": "string"}
    assert schema["properties"]["legs"]["items"] == {"$ref": "#/$defs/Leg"}
    assert schema["properties"]["notes"]["default"] == {"title": "as given"}
    assert "'title': 'Legs'" not in str(schema) and "Itinerary" not in str(schema)
    # the simulator checks the definition as the API does and fills the payload in from
    # the schema, following the $ref; the loop validates it against the model
    result = router.start("Book me two nights in Oslo.").wait(timeout=60)
    assert result["status"] == "completed", result
    rec = session_store().load(result["session_id"])
    payload = rec["chain"][1]["payload"]
    Itinerary.model_validate(payload)
    assert payload["legs"] and set(payload["legs"][0]) == {"title", "nights"}
    assert payload["notes"] == {"title": "as given"}
    assert rec["agent"] == "loop_trips" and sim_requests(fresh_sim) == 2


def test_a_hand_off_to_an_agent_without_tools(agent_worker: Any, fresh_sim: Any) -> None:
    # The transcript holds tool blocks; the API wants them defined: named, not callable.
    Agent("loop_faq", model="haiku", system="You answer questions.", max_tokens=256)
    router = Agent(
        "loop_router2",
        model="haiku",
        system="[[sim:tool_rounds=1]] You route.",
        handoffs=["loop_faq"],
        max_tokens=256,
    )
    result = router.start("What are your opening hours?").wait(timeout=60)
    assert result["status"] == "completed", result
    rec = session_store().load(result["session_id"])
    assert rec["agent"] == "loop_faq" and set(rec["chain"][1]["payload"]) == {"reason", "context"}
    assert rec["steps"][1]["request"]["tools"] == ["transfer_to_loop_faq"]
    assert sim_requests(fresh_sim) == 2


def test_a_dead_lettered_step_fails_the_session(agent_worker: Any, fresh_sim: Any) -> None:
    agent = Agent("loop_dead", model="haiku", system="[[sim:error=400]]", max_tokens=64)
    result = agent.start("Hello.").wait(timeout=60)
    assert result["status"] == "failed"
    assert result["error"].startswith("step 1: dead-lettered as ")
    rec = session_store().load(result["session_id"])
    assert rec["steps"][0]["status"] == "failed" and rec["reserved_usd"] == 0.0
    assert sim_requests(fresh_sim) == 1  # a 400 is not retried


def test_a_bad_request_is_refused_at_start(clean: None) -> None:
    agent = Agent("loop_bad", model="haiku", max_tokens=10**6)
    with pytest.raises(RequestError):
        agent.start("hello")
    with pytest.raises(RequestError):
        Agent("loop_ok", model="haiku").start("hello", session_id="no spaces allowed")


# -- stop reasons -------------------------------------------------------------------------


def test_pause_turn_sends_the_turn_back(agent_worker: Any, fresh_sim: Any) -> None:
    # Every answer pauses (the directive is in the system prompt): each is sent back as
    # it came, to be continued, until the step ceiling ends it.
    agent = Agent("loop_pause", model="haiku", system="[[sim:stop_reason=pause_turn]]", max_steps=3)
    result = agent.start("Search the web.").wait(timeout=60)
    assert (result["status"], result["stop_reason"]) == ("stopped", "max_steps")
    rec = session_store().load(result["session_id"])
    assert [s["response"]["stop_reason"] for s in rec["steps"]] == ["pause_turn"] * 3
    assert [s["request"]["messages"] for s in rec["steps"]] == [1, 2, 3]
    assert [m["role"] for m in rec["transcript"]] == ["user"] + ["assistant"] * 3
    assert sim_requests(fresh_sim) == 3


def test_max_tokens_inside_a_tool_call_asks_again_with_more_room(
    agent_worker: Any, fresh_sim: Any
) -> None:
    # 14 tokens: the simulator's 12-token sentence, then the tool call cut short.
    agent = Agent(
        "loop_room", model="haiku", system="[[sim:tool_rounds=1]]", tools=[lookup], max_tokens=14
    )
    result = agent.start("Look 'loop' up.").wait(timeout=60)
    assert result["status"] == "completed", result
    rec = session_store().load(result["session_id"])
    first, second = rec["steps"][:2]
    assert first["response"]["stop_reason"] == "max_tokens" and first["discarded"]
    assert second["request"]["max_tokens"] == 28
    assert second["response"]["stop_reason"] == "tool_use" and not second["discarded"]
    # the cut answer never reached the transcript, and its half tool call never ran
    assert rec["transcript"][1]["content"] == second["response"]["content"]
    assert CALLS["lookup"] == 1 and len(rec["tool_calls"]) == 1
    assert rec["steps"][2]["request"]["max_tokens"] == 14
    assert sim_requests(fresh_sim) == len(rec["steps"]) == 3
