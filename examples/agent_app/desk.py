"""The support desk: a router agent and two specialists, and the tools they call.

    desk_router    reads the customer's message and hands off, with a typed payload,
                   to desk_bookings or desk_billing (``transfer_to_desk_*`` tools)
    desk_bookings  lookup_booking, change_booking_nights
    desk_billing   lookup_invoice, refund_booking (requires approval)

Every worker that runs these sessions' steps or tool calls imports this module
(``agentjobs worker haiku -I desk``, with this folder on ``PYTHONPATH``). The tools
read and write the SQLite database of ``desk_db.py``; each takes the call's
``idempotency_key`` (``session:step:tool_use_id``, the same on every retry or
redelivery) and logs the attempt (committed on its own, so a run that fails or is
killed still counts); the two that write use the key as a UNIQUE column, so a call
run again changes nothing and returns the first run's answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from desk_db import FIRST_BOOKING, LAST_BOOKING, connect, log_attempt, pause
from pydantic import BaseModel, Field

from agentjobs.agents.agent import Agent
from agentjobs.agents.handoff import Handoff
from agentjobs.agents.tool import tool

BookingId = Annotated[
    int, Field(ge=FIRST_BOOKING, le=LAST_BOOKING, description="The booking number, e.g. 1007")
]


class Ticket(BaseModel):
    """What the router passes on: the booking the customer means and what they want."""

    booking_id: BookingId
    summary: str = Field(description="The customer's request in one sentence")


# -- bookings ------------------------------------------------------------------------


@tool
def lookup_booking(booking_id: BookingId, idempotency_key: str) -> dict[str, Any]:
    """Look up a booking: hotel, check-in date, nights, status and the customer."""
    log_attempt(idempotency_key, "lookup_booking")
    with connect() as conn:
        row = conn.execute(
            "SELECT b.id, b.hotel, b.check_in, b.nights, b.status, c.name, c.email"
            " FROM bookings b JOIN customers c ON c.id = b.customer_id WHERE b.id = ?",
            (booking_id,),
        ).fetchone()
    if row is None:
        raise LookupError(f"no booking {booking_id}")
    pause()
    return dict(row)


@tool
def change_booking_nights(
    booking_id: BookingId,
    nights: Annotated[int, Field(ge=1, le=14, description="The new number of nights")],
    idempotency_key: str,
) -> dict[str, Any]:
    """Change how many nights a booking is for; the invoice follows (120 USD a night).

    Safe to repeat: a call with the same idempotency key changes nothing twice.
    """
    log_attempt(idempotency_key, "change_booking_nights")
    with connect() as conn:
        done = conn.execute(
            "SELECT old_nights, new_nights FROM changes WHERE idempotency_key = ?",
            (idempotency_key,),
        ).fetchone()
        if done is not None:  # this call ran before: answer as it did
            return {"booking_id": booking_id, **dict(done), "repeated": True}
        row = conn.execute("SELECT nights, status FROM bookings WHERE id = ?", (booking_id,))
        booking = row.fetchone()
        if booking is None:
            raise LookupError(f"no booking {booking_id}")
        if booking["status"] != "confirmed":
            raise ValueError(f"booking {booking_id} is {booking['status']}")
        conn.execute(
            "INSERT INTO changes VALUES (?, ?, ?, ?, strftime('%s','now'))",
            (idempotency_key, booking_id, booking["nights"], nights),
        )
        conn.execute("UPDATE bookings SET nights = ? WHERE id = ?", (nights, booking_id))
        conn.execute(
            "UPDATE invoices SET amount_usd = ? WHERE booking_id = ?", (120.0 * nights, booking_id)
        )
    pause()
    return {"booking_id": booking_id, "old_nights": booking["nights"], "new_nights": nights}


# -- billing -------------------------------------------------------------------------


@tool
def lookup_invoice(booking_id: BookingId, idempotency_key: str) -> dict[str, Any]:
    """Look up a booking's invoice: amount, refunded so far, and what can still be refunded."""
    log_attempt(idempotency_key, "lookup_invoice")
    with connect() as conn:
        row = conn.execute(
            "SELECT id AS invoice_id, booking_id, amount_usd, refunded_usd"
            " FROM invoices WHERE booking_id = ?",
            (booking_id,),
        ).fetchone()
    if row is None:
        raise LookupError(f"no invoice for booking {booking_id}")
    out = dict(row)
    out["refundable_usd"] = round(out["amount_usd"] - out["refunded_usd"], 2)
    pause()
    return out


class Refund(BaseModel):
    """A refund of part or all of a booking's invoice."""

    booking_id: BookingId
    amount_usd: float = Field(gt=0, le=600, description="USD to refund")
    reason: Literal["cancelled", "service_issue", "overcharge", "goodwill"]


@tool(requires_approval=True)
def refund_booking(refund: Refund, idempotency_key: str) -> dict[str, Any]:
    """Refund money on a booking's invoice. A person approves each refund before it runs.

    Safe to repeat: a call with the same idempotency key refunds once.
    """
    log_attempt(idempotency_key, "refund_booking")
    with connect() as conn:
        done = conn.execute(
            "SELECT invoice_id, amount_usd FROM refunds WHERE idempotency_key = ?",
            (idempotency_key,),
        ).fetchone()
        if done is not None:
            return {**dict(done), "repeated": True}
        inv = conn.execute(
            "SELECT id, amount_usd, refunded_usd FROM invoices WHERE booking_id = ?",
            (refund.booking_id,),
        ).fetchone()
        if inv is None:
            raise LookupError(f"no invoice for booking {refund.booking_id}")
        left = round(inv["amount_usd"] - inv["refunded_usd"], 2)
        if refund.amount_usd > left:
            raise ValueError(f"only {left:.2f} USD of invoice {inv['id']} can be refunded")
        conn.execute(
            "INSERT INTO refunds VALUES (?, ?, ?, ?, strftime('%s','now'))",
            (idempotency_key, inv["id"], refund.amount_usd, refund.reason),
        )
        conn.execute(
            "UPDATE invoices SET refunded_usd = refunded_usd + ? WHERE id = ?",
            (refund.amount_usd, inv["id"]),
        )
    pause()
    return {"invoice_id": inv["id"], "amount_usd": refund.amount_usd, "refunded": True}


# -- the agents ----------------------------------------------------------------------

ROUTER_SYSTEM = """You are the first line of a hotel group's support desk.
Read the customer's message and hand it to the right specialist, at once and without
answering it yourself: desk_bookings for changes to stays (dates, nights, status),
desk_billing for invoices, charges and refunds. Pass the booking number and the
request in one sentence."""

BOOKINGS_SYSTEM = """You are the bookings specialist of a hotel group's support desk.
Look the booking up before you change it. Change only what the customer asked for,
then tell them in two sentences what changed. Never promise refunds: that is billing."""

BILLING_SYSTEM = """You are the billing specialist of a hotel group's support desk.
Look the invoice up before any refund; refund at most what is refundable, with the
reason that fits. Refunds wait for a person's approval: say so if one is pending.
Answer in two sentences."""

router = Agent(
    "desk_router",
    model="haiku",
    system=ROUTER_SYSTEM,
    handoffs=[
        Handoff("desk_bookings", payload=Ticket, description="Stays: dates, nights, status."),
        Handoff("desk_billing", payload=Ticket, description="Invoices, charges and refunds."),
    ],
    # A session keeps the ceilings of the agent it started with, across hand-offs.
    max_steps=10,
    max_tool_calls=12,
    max_cost_usd=0.50,
    timeout_s=600,
    max_tool_errors=3,
)

bookings = Agent(
    "desk_bookings",
    model="sonnet",
    system=BOOKINGS_SYSTEM,
    # Definition order matters to the simulator only (it calls named tools in turn).
    tools=[change_booking_nights, lookup_booking],
    max_steps=8,
    max_tool_calls=10,
    max_cost_usd=0.50,
    timeout_s=300,
)

billing = Agent(
    "desk_billing",
    model="sonnet",
    system=BILLING_SYSTEM,
    # Definition order matters to the simulator only (it calls named tools in turn).
    tools=[refund_booking, lookup_invoice],
    max_steps=8,
    max_tool_calls=10,
    max_cost_usd=0.50,
    timeout_s=300,
)
