"""One Message Batches entry: read from the batch body, validated, planned, answered.

Each entry is validated and answered by the synchronous endpoint's own code
(``validation.parse``, ``answer.generate``/``respond``): an invalid entry is an
``errored`` result, never a failed batch, and a succeeded entry gets the text the same
request gets from ``POST /v1/messages``, billed at the batch discount. Entries use no
rate-limit bucket and no random fault; ``[[sim:latency_ms]]`` and ``[[sim:fault]]`` do
not apply to them.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from agentjobs.simulator import answer, models, textgen, validation
from agentjobs.simulator.apierror import ApiError, invalid
from agentjobs.simulator.state import Call, State

logger = logging.getLogger(__name__)

PATH = "/v1/messages/batches"
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: Values of the per-entry ``[[sim:batch=...]]`` directive.
DIRECTIVES = ("succeeded", "errored", "expired")


@dataclass
class Entry:
    custom_id: str
    params: dict[str, Any]
    #: What the entry comes to unless a cancel or the 24 h limit gets to it first.
    planned: str = "succeeded"
    error: ApiError | None = None
    parsed: validation.Parsed | None = None
    digest: str | None = None
    directives: dict[str, str] = field(default_factory=dict)
    #: Simulated seconds after the batch's creation when this entry is finished.
    due_s: float = 0.0


def entries(body: Any, max_requests: int) -> list[Entry]:
    """The batch's entries; a malformed envelope fails the whole create with a 400."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    for key in body:
        if key != "requests":
            raise invalid(f"{key}: Extra inputs are not permitted")
    requests = body.get("requests")
    if requests is None:
        raise invalid("requests: Field required")
    if not isinstance(requests, list):
        raise invalid("requests: Input should be a valid list")
    if not requests:
        raise invalid("requests: List should have at least 1 item")
    if len(requests) > max_requests:
        raise invalid(
            f"requests: a batch holds at most {max_requests:,} requests, got {len(requests):,}"
        )
    found, seen = [], set()
    for i, item in enumerate(requests):
        if not isinstance(item, dict):
            raise invalid(f"requests.{i}: Input should be a valid dictionary")
        for key in item:
            if key not in ("custom_id", "params"):
                raise invalid(f"requests.{i}.{key}: Extra inputs are not permitted")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
            raise invalid(
                f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if custom_id in seen:
            raise invalid(f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}")
        seen.add(custom_id)
        params = item.get("params")
        if not isinstance(params, dict):
            raise invalid(f"requests.{i}.params: Input should be a valid dictionary")
        found.append(Entry(custom_id, params))
    return found


def plan(sim: State, batch_entries: list[Entry], rng: random.Random) -> None:
    """Validate each entry and decide what it comes to; draw the configured shares.

    The shares are of the valid entries without a ``[[sim:batch]]`` directive, rounded
    to the nearest whole entry, so a test can count them exactly.
    """
    config = sim.config
    undecided: list[Entry] = []
    for entry in batch_entries:
        _validate(sim, entry)
        if entry.error is not None:
            entry.planned = "errored"
        elif "batch" in entry.directives:
            entry.planned = entry.directives["batch"]
            if entry.planned == "errored":
                entry.error = ApiError(500)
        else:
            undecided.append(entry)
    n = len(undecided)
    expiring = rng.sample(undecided, _share(config.batch_expire_share, n))
    for entry in expiring:
        entry.planned = "expired"
    chosen = {id(e) for e in expiring}
    rest = [e for e in undecided if id(e) not in chosen]
    for entry in rng.sample(rest, _share(config.batch_error_share, n)):
        entry.planned, entry.error = "errored", ApiError(500)
    total_s = config.batch_processing_ms / 1000.0
    for i, entry in enumerate(batch_entries):
        entry.due_s = total_s * (i + 1) / len(batch_entries)


def _share(share: float, n: int) -> int:
    return min(n, math.floor(share * n + 0.5))


def _validate(sim: State, entry: Entry) -> None:
    params = entry.params
    raw = json.dumps(params)
    try:
        if params.get("stream"):
            raise invalid("stream: batch requests cannot stream")
        parsed = validation.parse(params, with_cache="cache_control" in raw)
        directives: dict[str, str] = {}
        if "[[sim:" in raw:
            try:
                directives = textgen.directives(raw)
            except ValueError as exc:
                raise invalid(str(exc)) from None
        if directives.get("batch", "succeeded") not in DIRECTIVES:
            raise invalid(f"[[sim:batch={directives['batch']}]]: one of {', '.join(DIRECTIVES)}")
        if "error" in directives:
            raise answer._forced_error(directives["error"], sim)
    except ApiError as exc:
        entry.error = exc
        return
    entry.parsed, entry.directives = parsed, directives
    entry.digest = answer.request_digest(parsed, params)


def finish(
    sim: State, entry: Entry, request_id: str, batch_id: str, created_at: float
) -> tuple[str, dict[str, Any]]:
    """Answer (or fail) a planned entry: its result type and its result object."""
    stats = sim.stats
    call = Call(PATH, request_id)
    kind, error, parsed = entry.planned, entry.error, entry.parsed
    if kind == "expired":
        return kind, {"type": kind}
    if parsed is not None:
        call.model, call.group, call.digest = parsed.model.id, parsed.model.group, entry.digest
        stats.calls_by_hash[str(entry.digest)] += 1
    result: dict[str, Any] = {"type": kind}
    if kind == "succeeded" and parsed is not None:
        try:
            result["message"] = _answer(sim, call, parsed, entry.directives)
        except ApiError as exc:
            kind, error = "errored", exc
        except Exception:
            # A simulator bug must still look like the API: this entry errors.
            logger.exception("simulator: unexpected error in batch %s", batch_id)
            kind, error = "errored", ApiError(500)
    if kind == "errored":
        assert error is not None
        result = {"type": "errored", "error": error.body(request_id)}
    _log(sim, entry, call, kind, error, batch_id, created_at)
    return kind, result


def _answer(
    sim: State, call: Call, parsed: validation.Parsed, directives: dict[str, str]
) -> dict[str, Any]:
    text = answer.generate(call, parsed, directives, sim.config)
    use = sim.cache.lookup(parsed.breakpoints, parsed.model.min_cache_tokens)
    sim.cache.commit(use)
    message = answer.respond(sim, call, parsed, use, text, price_factor=models.BATCH_DISCOUNT)
    message["usage"]["service_tier"] = "batch"  # as the API reports a batch entry's usage
    stats, usage = sim.stats, call.usage or {}
    stats.batch_input_tokens += usage.get("input_tokens", 0)
    stats.batch_output_tokens += usage.get("output_tokens", 0)
    stats.batch_cost_usd += call.cost_usd
    return message


def _log(
    sim: State,
    entry: Entry,
    call: Call,
    kind: str,
    error: ApiError | None,
    batch_id: str,
    created_at: float,
) -> None:
    """A request-log line as for POST /v1/messages, plus the batch fields and the cost."""
    if sim.log.path is None:
        return
    usage = call.usage or {}
    sim.log.append(
        {
            "ts": round(time.time(), 3),
            "request_id": call.request_id,
            "path": PATH,
            "model": call.model,
            "group": call.group,
            "status": 200 if error is None else error.status,
            "error_type": None if error is None else error.type,
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0),
            "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
            "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
            "latency_ms": round((time.time() - created_at) * 1000, 2),
            "hash": call.digest,
            "fault": None,
            "batch_id": batch_id,
            "custom_id": entry.custom_id,
            "result": kind,
            "cost_usd": round(call.cost_usd, 8),
        }
    )
