"""``agentjobs batches``: the Message Batches lane's open batches and waiting requests."""

from __future__ import annotations

import time
from typing import Any

import click

from agentjobs.cli.context import echo_json, fail, json_option
from agentjobs.lanes import batcher, records


def _find(ident: str) -> dict[str, Any] | None:
    """An open batch by its local id (``lb_...``) or the API's (``msgbatch_...``)."""
    for b in records.open_batches():
        if ident in (b["local"], b.get("id")):
            return b
    return None


def _api(batch_id: str) -> dict[str, Any]:
    got = batcher.batches().retrieve(batch_id)
    out: dict[str, Any] = got.to_dict(mode="json")
    return out


@click.group(
    epilog="""\b
Examples:
  agentjobs batches list                 # waiting requests per group, open batches
  agentjobs batches list --json | jq .waiting_total
  agentjobs batches show msgbatch_01...  # the batch as the API sees it, and its requests
  agentjobs batches cancel msgbatch_01...
"""
)
def batches() -> None:
    """The Message Batches lane: requests waiting, batches open (half price, within 24 h).

    A request sent with lane="batch" (or by AGENTJOBS_LANE_DEFAULTS) waits in the state
    store until its model group has enough requests or its oldest has waited long
    enough; the batch's answers then complete each task's AsyncResult (docs/batches.md).
    """


@batches.command("list")
@json_option()
def list_(as_json: bool) -> None:
    """Requests waiting per model group, the open batches and the lane's counters."""
    over = records.overview()
    if as_json:
        echo_json(over)
        return
    now = time.time()
    waiting = ", ".join(f"{g} {n}" for g, n in sorted(over["waiting"].items())) or "none"
    click.echo(f"waiting: {waiting} (oldest {over['oldest_age_s']:.0f}s)")
    if not over["open"]:
        click.echo("no open batch")
    for b in over["open"]:
        click.echo(
            f"{b.get('id') or b['local']:40} {b['state']:12} {b['group']:8} "
            f"{len(b['cids']):6} requests  {now - b['at']:.0f}s old"
        )
    st = over["stats"]
    if st:
        click.echo(
            f"batches {st.get('batches', 0):.0f}, succeeded {st.get('succeeded', 0):.0f}, "
            f"errored {st.get('errored', 0):.0f}, expired {st.get('expired', 0):.0f}, "
            f"dead-lettered {st.get('dead_lettered', 0):.0f}, "
            f"saved ${st.get('saved_usd', 0):.4f}"
        )


@batches.command("show")
@click.argument("batch")
@json_option()
def show(batch: str, as_json: bool) -> None:
    """One batch (its local id or the API's): our record, and the API's view of it."""
    rec = _find(batch)
    api_id = rec.get("id") if rec else batch
    if rec is None and not batch.startswith("msgbatch_"):
        raise fail(f"no open batch {batch}")
    api = _api(api_id) if api_id else None
    if as_json:
        echo_json({"record": rec, "api": api})
        return
    if rec is not None:
        click.echo(
            f"local id:  {rec['local']}\nstate:     {rec['state']}\ngroup:     {rec['group']}"
        )
        click.echo(f"requests:  {len(rec['cids'])}")
    if api is not None:
        click.echo(f"batch id:  {api['id']}\nstatus:    {api['processing_status']}")
        click.echo(f"counts:    {api['request_counts']}")


@batches.command("cancel")
@click.argument("batch")
def cancel(batch: str) -> None:
    """Ask the API to cancel a batch; its unfinished entries come back canceled and are
    sent once more within their deadline, else dead-lettered."""
    rec = _find(batch)
    api_id = rec.get("id") if rec else batch
    if not api_id:
        raise fail(f"batch {batch} is not submitted yet")
    got = batcher.batches().cancel(api_id)
    click.echo(f"{got.id}: {got.processing_status}")
