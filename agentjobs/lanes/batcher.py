"""The batcher and the poller: waiting requests into Message Batches, answers out.

One ``tick`` (run by one worker at a time, runner.py) does three things in order:

1. **recover**: an open batch still ``submitting`` at the start of a tick was left by a
   worker that died between taking its requests and recording the batch id, or by a
   create call whose answer was lost. The batch may exist: the intent recorded the
   newest batch id before the create, so the batches created since are listed, and one
   no other record holds, with as many requests, is adopted. Only when there is none is
   the batch created (again): a create is never repeated once the API took it.
2. **submit**: a model group whose waiting requests reach ``AGENTJOBS_BATCH_MAX_REQUESTS``
   or ``AGENTJOBS_BATCH_MAX_BYTES``, or whose oldest has waited
   ``AGENTJOBS_BATCH_MAX_AGE_S``, becomes a batch: its requests are moved into an open
   record (one transaction) before the create call, which the SDK does not retry.
3. **poll**: each open batch is looked at after ``AGENTJOBS_BATCH_POLL_MIN_S``, the wait
   doubling up to ``AGENTJOBS_BATCH_POLL_MAX_S``; once it ended, every entry is handled
   (each one only while the request is still recorded in that batch, so handling the
   same results twice after a crash changes nothing) and the record goes.

An entry that ``succeeded`` becomes the key's result (the idempotency record, then the
result backend of every task waiting on it) at the batch price; ``errored`` follows the
retry policy by failure class (a transient one goes back to the pending set, a
permanent one is dead-lettered with the batch id); ``expired`` or ``canceled`` is sent
once more within the caller's deadline, else dead-lettered.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import anthropic

try:  # anthropic >= 2 is built on httpx2; older releases on httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx  # type: ignore[no-redef]
from anthropic.types import TextBlock

from agentjobs.api import client as api
from agentjobs.api.errors import ERROR_TYPE_STATUS
from agentjobs.errors import DeadLetteredError, UnknownModelError
from agentjobs.lanes import records
from agentjobs.messages.result import ClaudeResult
from agentjobs.messages.usage import cache_ttl, cost_usd, usage_of
from agentjobs.reliability import deadletter, idempotency, retry
from agentjobs.settings import get_settings
from agentjobs.spend import budget, cost

log = logging.getLogger(__name__)


def batches(timeout_s: float = 60.0) -> Any:
    """The SDK's batches resource, without the SDK's own retries: a create whose answer
    was lost is recognised (``recover``), never sent a second time by the client."""
    return api.get_client().with_options(max_retries=0, timeout=timeout_s).messages.batches


@dataclasses.dataclass
class Tick:
    """What one tick did (for logs and tests)."""

    recovered: int = 0
    submitted: int = 0
    polled: int = 0
    ended: int = 0


def tick(
    app: Any,
    *,
    owner: str = "",
    hostname: str = "",
    now: Callable[[], float] = time.time,
    create_timeout_s: float = 60.0,
    keep: Callable[[], bool] = lambda: True,
) -> Tick:
    """One round of recover, submit and poll (the caller holds the lane's lock).

    ``keep`` renews the lock; it is called before each create and poll, and every few
    hundred results, and the tick stops where it is once it says the lock is lost (the
    next holder goes on from the records)."""
    done = Tick()
    res = batches(create_timeout_s)
    for b in records.open_batches():
        if b["state"] == "submitting":
            if not keep():
                return done
            _recover(res, b)
            done.recovered += 1
    for group in records.groups():
        if not keep():
            return done
        done.submitted += _submit_ready(res, group, owner, now())
    for b in records.open_batches():
        if b["state"] == "in_progress" and now() >= b["next_poll"]:
            if not keep():
                return done
            done.polled += 1
            if _poll(app, res, b, hostname, now, keep):
                done.ended += 1
    return done


# -- submit -----------------------------------------------------------------------------


def _newest_id(res: Any) -> str | None:
    page = res.list(limit=1)
    return page.data[0].id if page.data else None


def _submit_ready(res: Any, group: str, owner: str, t: float) -> int:
    s = get_settings()
    cids = records.pending(group, s.batch_max_requests)
    if not cids:
        return 0
    first = records.oldest(group)
    reqs = records.requests(cids)
    chosen: dict[str, dict[str, Any]] = {}
    size, full = 0, len(cids) >= s.batch_max_requests
    for c in cids:
        rec = reqs.get(c)
        if rec is None:
            continue
        n = len(records.json_bytes(rec["params"])) + len(c) + 40
        if chosen and size + n > s.batch_max_bytes:
            full = True
            break
        size += n
        chosen[c] = rec
    old = first is not None and t - first >= s.batch_max_age_s
    if not chosen or not (full or old):
        return 0
    for rec in chosen.values():
        rec["n"] += 1
    batch: dict[str, Any] = {
        "local": "lb_" + uuid.uuid4().hex[:20],
        "id": None,
        "group": group,
        "cids": list(chosen),
        "state": "submitting",
        "before": _newest_id(res),  # the intent: what a recovery lists from
        "at": t,
        "owner": owner,
        "interval": s.batch_poll_min_s,
        "next_poll": t + s.batch_poll_min_s,
    }
    records.take(group, chosen, batch)
    _create(res, batch, chosen)
    return 1


def _create(res: Any, batch: dict[str, Any], reqs: dict[str, dict[str, Any]]) -> None:
    body = [{"custom_id": c, "params": reqs[c]["params"]} for c in batch["cids"] if c in reqs]
    try:
        created = res.create(requests=body)
    except anthropic.APIStatusError as exc:
        if exc.status_code in (408, 409) or exc.status_code >= 500:
            log.warning("batch %s: create failed (%s), recovered next tick", batch["local"], exc)
            return  # it may have been created: the next tick lists and decides
        # Refused as a whole: nothing was created. A rate or spend limit puts the
        # requests back to wait; any other refusal is the requests' own: dead letters.
        log.warning("batch %s: create refused: %s", batch["local"], exc)
        failure = retry.classify(exc)
        for c, rec in reqs.items():
            if failure.action in (retry.Action.WAIT, retry.Action.PAUSE):
                rec["n"] -= 1
                records.requeue(c, rec)
            else:
                _dead(None, batch, rec, failure, "the batch create was refused")
        records.drop_open(batch["local"])
        return
    except Exception as exc:  # connection, timeout: the answer is lost, not the batch
        log.warning("batch %s: create failed (%r), recovered next tick", batch["local"], exc)
        return
    batch["id"], batch["state"] = created.id, "in_progress"
    records.save_open(batch)
    records.count("batches")
    records.count("requests", len(body))
    log.info("batch %s: %d requests of %s", created.id, len(body), batch["group"])


def _recover(res: Any, batch: dict[str, Any]) -> None:
    known = {b["id"] for b in records.open_batches() if b.get("id")}
    params: dict[str, Any] = {"limit": 1000}
    if batch.get("before"):
        params["before_id"] = batch["before"]
    found = None
    for item in res.list(**params).data:  # newest first: the last match came first
        rc = item.request_counts
        total = rc.processing + rc.succeeded + rc.errored + rc.canceled + rc.expired
        if item.id not in known and total == len(batch["cids"]):
            found = item.id
    if found is not None:
        batch["id"], batch["state"] = found, "in_progress"
        records.save_open(batch)
        records.count("recovered")
        log.warning("batch %s: its create had reached the API as %s", batch["local"], found)
        return
    reqs = records.requests(batch["cids"])
    log.warning("batch %s: its create never reached the API: creating it", batch["local"])
    _create(res, batch, reqs)


# -- poll and results -------------------------------------------------------------------


def _poll(
    app: Any,
    res: Any,
    batch: dict[str, Any],
    hostname: str,
    now: Callable[[], float],
    keep: Callable[[], bool] = lambda: True,
) -> bool:
    s = get_settings()
    got = res.retrieve(batch["id"])
    if got.processing_status != "ended":
        batch["next_poll"] = now() + batch["interval"]
        batch["interval"] = min(s.batch_poll_max_s, batch["interval"] * 2)
        records.save_open(batch)
        return False
    seen: set[str] = set()
    for i, entry in enumerate(res.results(batch["id"]), 1):
        seen.add(entry.custom_id)
        _entry(app, batch, entry, hostname, now())
        if i % 200 == 0 and not keep():
            return False  # the lock is lost: the next holder reads the results again
    # An entry the results do not name (an adopted batch that was not ours): wait again.
    left = [c for c in batch["cids"] if c not in seen]
    for c, w in records.where(left).items():
        rec = records.requests([c]).get(c)
        if w == batch["local"] and rec is not None:
            records.requeue(c, rec)
    records.drop_open(batch["local"])
    records.count("ended")
    return True


def _entry(app: Any, batch: dict[str, Any], entry: Any, hostname: str, t: float) -> None:
    cid = entry.custom_id
    if records.where([cid]).get(cid) != batch["local"]:
        return  # handled already (results read again after a crash), or not ours
    rec = records.requests([cid]).get(cid)
    if rec is None:
        return
    result = entry.result
    kind = result.type
    records.count(kind)
    if kind == "succeeded":
        _succeed(app, batch, rec, result.message, hostname, t)
        return
    deadline = rec.get("deadline")
    in_time = deadline is None or t < deadline
    if kind == "errored":
        err = getattr(getattr(result, "error", None), "error", None)
        failure = _failure(getattr(err, "type", "api_error"), getattr(err, "message", ""))
        policy = retry.policy_for(rec["family"])
        again = (
            failure.action in (retry.Action.BACKOFF, retry.Action.WAIT)
            and rec["errors"] + 1 < policy.max_attempts
            and t - rec["at"] < policy.max_total_s
            and in_time
        )
        if again:
            rec["errors"] += 1
            records.requeue(cid, rec, now=t)
            records.count("retried")
            return
        why = "permanent error" if failure.action == retry.Action.DEAD_LETTER else "retries used up"
        _dead(app, batch, rec, failure, why, hostname, t)
        return
    # expired or canceled: once more, within the caller's deadline
    if rec["n"] < 2 and in_time:
        records.requeue(cid, rec, now=t)
        records.count("resubmitted")
        return
    failure = retry.Failure(kind, f"Batch{kind.capitalize()}", f"the batch entry {kind}")
    why = "sent twice" if rec["n"] >= 2 else "past the caller's deadline"
    _dead(app, batch, rec, failure, why, hostname, t)


def _failure(error_type: str, message: str) -> retry.Failure:
    status = ERROR_TYPE_STATUS.get(error_type, 500)
    response = httpx.Response(status, request=httpx.Request("POST", "https://batch.invalid"))
    exc = anthropic.APIStatusError(message, response=response, body=None)
    return dataclasses.replace(retry.classify(exc), error_class=error_type)


def _price(model: str, usage: Any, params: dict[str, Any], batch: bool) -> float:
    try:
        return cost_usd(model, usage, cache_ttl=cache_ttl(params), batch=batch)
    except UnknownModelError:
        return 0.0


def _succeed(
    app: Any, batch: dict[str, Any], rec: dict[str, Any], msg: Any, hostname: str, t: float
) -> None:
    s = get_settings()
    cid, key = rec["cid"], rec["k"]
    usage = usage_of(msg)
    usd = _price(msg.model, usage, rec["params"], True)
    waiting = records.task_ids(cid)
    result = ClaudeResult(
        id=msg.id,
        model=msg.model,
        text="".join(b.text for b in msg.content if isinstance(b, TextBlock)),
        content=[b.to_dict(mode="json") for b in msg.content],
        stop_reason=msg.stop_reason,
        usage=usage,
        cost_usd=usd,
        latency_ms=round((t - rec["at"]) * 1000.0, 3),
        attempts=rec["n"],
        cached=False,
        queue=rec["queue"],
        worker=hostname,
        idempotency_key=key,
        task_id=waiting[0] if waiting else None,
        tenant=rec.get("tenant"),
        route_reason=rec["kwargs"].get("route_reason"),
        lane="batch",
    )
    claim = idempotency.Claim(key=key, token="", state="claimed", task_id=result.task_id or "")
    stored = idempotency.finish(claim, {"result": result.model_dump(mode="json")}, s.result_ttl_s)
    value = stored["result"]
    if value.get("id") == result.id:  # ours is the key's answer: count what it cost
        cost.record_result(result)
        saved = _price(msg.model, usage, rec["params"], False) - usd
        records.count("saved_usd", float(saved))
    _release(rec)
    _answer(app, cid, waiting, lambda tid: app.backend.store_result(tid, value, "SUCCESS"))


def _dead(
    app: Any,
    batch: dict[str, Any],
    rec: dict[str, Any],
    failure: retry.Failure,
    reason: str,
    hostname: str = "",
    t: float | None = None,
) -> None:
    s = get_settings()
    t = time.time() if t is None else t
    cid, key = rec["cid"], rec["k"]
    waiting = records.task_ids(cid)
    dl_id = deadletter.dead_letter_id(key)
    where = f"Message Batch {batch['id']}" if batch.get("id") else "a Message Batch create"
    record = deadletter.DeadLetter.model_validate(
        {
            "id": dl_id,
            "created_at": t,
            "request": dict(rec["kwargs"]),
            "error_class": failure.error_class,
            "error_kind": failure.kind,
            "message": f"{failure.message} ({where})",
            "status": failure.status,
            "reason": reason,
            "attempts": [],
            "queue": rec["queue"],
            "worker": hostname,
            "task_id": waiting[0] if waiting else "",
            "idempotency_key": key,
            "group": rec["group"],
            "batch_id": batch.get("id"),
            "lane": "batch",
        }
    )
    deadletter.add(record, t)
    message = (
        f"dead-lettered as {dl_id} from {where}: {failure.error_class}: {failure.message} "
        f"({reason}); see `agentjobs dlq show {dl_id}`"
    )
    claim = idempotency.Claim(key=key, token="", state="claimed", task_id=record.task_id)
    stored = idempotency.finish(claim, {"dead_letter": dl_id, "message": message}, s.dlq_max_age_s)
    records.count("dead_lettered")
    _release(rec)
    if app is None:
        app = _default_app()
    if "dead_letter" in stored:
        exc = DeadLetteredError(message, dl_id)
        _answer(app, cid, waiting, lambda tid: app.backend.mark_as_failure(tid, exc))
    else:  # another copy of the key succeeded meanwhile: its answer wins
        deadletter.remove(dl_id)
        value = stored["result"]
        _answer(app, cid, waiting, lambda tid: app.backend.store_result(tid, value, "SUCCESS"))


def _default_app() -> Any:
    from celery import current_app

    return current_app


def _release(rec: dict[str, Any]) -> None:
    """Give back the budget held while the request waited (step.py)."""
    if rec.get("hold"):
        budget.release(budget.Hold(*rec["hold"]))


def _answer(app: Any, cid: str, waiting: list[str], write: Callable[[str], Any]) -> None:
    """Write the outcome for every task waiting on ``cid``, then end its records; tasks
    that joined meanwhile are answered too."""
    todo = waiting
    while True:
        for tid in todo:
            write(tid)
        todo = records.close(cid, todo)
        if not todo:
            return
