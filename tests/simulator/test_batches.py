"""The Message Batches endpoints, through the real SDK's ``client.messages.batches``."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx
import pytest
from anthropic.types.messages import MessageBatch

from agentjobs.contrib.testing import wait_for

from .conftest import StartSim, sdk, user

#: A day of simulated time in 0.86 real seconds.
FAST_DAY = 1e-5
#: Claude Haiku 4.5's published list prices, USD per million tokens.
HAIKU_INPUT, HAIKU_OUTPUT = 1.0, 5.0


def params(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "haiku", "max_tokens": 60, "messages": user(text), **extra}


def entry(custom_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": params(text, **extra)}


def ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 10.0) -> MessageBatch:
    def check() -> MessageBatch | None:
        batch = client.messages.batches.retrieve(batch_id)
        return batch if batch.processing_status == "ended" else None

    result: MessageBatch = wait_for(check, timeout=timeout, what=f"{batch_id} to end")
    return result


def results(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    lines = list(client.messages.batches.results(batch_id))
    found = {line.custom_id: line.result for line in lines}
    assert len(found) == len(lines)
    return found


def test_lifecycle_shapes_and_results(start_sim: StartSim) -> None:
    s = start_sim(batch_processing_ms=200)
    requests = [
        entry("ok-1", "first question"),
        entry("ok-2", "second question", system="be brief", stop_sequences=["zzz"]),
        {"custom_id": "bad", "params": params("x", max_tokens=-1)},
        entry("gone", "[[sim:batch=expired]] please"),
        entry("broken", "[[sim:batch=errored]] please"),
        entry("busy", "[[sim:error=529]] please"),
        entry("typo", "[[sim:batch=maybe]] please"),
        {"custom_id": "nope", "params": params("q", model="claude-nope-9")},
        entry("streamed", "q", stream=True),
        *[entry(f"more_{i}", f"more {i}") for i in range(5)],
    ]
    with sdk(s) as c:
        created = c.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        assert created.id.startswith("msgbatch_") and created.type == "message_batch"
        assert created.processing_status == "in_progress"
        assert created.request_counts.processing == len(requests)
        assert created.request_counts.succeeded == created.request_counts.errored == 0
        assert created.results_url is None and created.ended_at is None
        assert created.expires_at - created.created_at == timedelta(hours=24)
        with pytest.raises(anthropic.AnthropicError, match="results_url"):
            list(c.messages.batches.results(created.id))

        batch = ended(c, created.id)
        assert batch.ended_at is not None and batch.cancel_initiated_at is None
        assert batch.results_url == f"{s.base_url}/v1/messages/batches/{created.id}/results"
        counts = batch.request_counts
        assert (counts.processing, counts.succeeded, counts.errored) == (0, 7, 6)
        assert (counts.expired, counts.canceled) == (1, 0)

        lines = list(c.messages.batches.results(created.id))
        order = [line.custom_id for line in lines]
        assert sorted(order) == sorted(r["custom_id"] for r in requests)
        assert order != [r["custom_id"] for r in requests]  # no particular order
        got = {line.custom_id: line.result for line in lines}

        # A succeeded entry is the answer the synchronous endpoint gives the same request.
        by_id = {r["custom_id"]: r["params"] for r in requests}
        for cid in ("ok-1", "ok-2"):
            sync = c.messages.create(**by_id[cid])
            assert got[cid].type == "succeeded"
            message = got[cid].message
            assert message.content == sync.content and message.stop_reason == sync.stop_reason
            assert message.model == sync.model == "claude-haiku-4-5"
            assert message.usage.service_tier == "batch"
            assert message.usage.model_copy(update={"service_tier": "standard"}) == sync.usage
        # An invalid entry errors with the synchronous endpoint's own validation message.
        with pytest.raises(anthropic.BadRequestError) as refused:
            c.messages.create(**requests[2]["params"])
        assert got["bad"].type == "errored"
        assert got["bad"].error.error.type == "invalid_request_error"
        assert got["bad"].error.error.message == refused.value.body["error"]["message"]
        assert (
            got["typo"].type == "errored" and "sim:batch=maybe" in got["typo"].error.error.message
        )
        assert got["nope"].error.error.type == "not_found_error"
        assert "stream" in got["streamed"].error.error.message
        assert got["gone"].type == "expired"
        assert got["broken"].type == "errored" and got["broken"].error.error.type == "api_error"
        assert got["busy"].error.error.type == "overloaded_error"
        assert got["busy"].error.type == "error" and got["busy"].error.request_id

    stats = s.stats()
    assert stats["batches"] == 1 and stats["batch_requests"] == len(requests)
    assert stats["batch_results"] == {"succeeded": 7, "errored": 6, "expired": 1, "canceled": 0}


def test_list_paginates_newest_first(start_sim: StartSim) -> None:
    s = start_sim(batch_processing_ms=600_000)
    with sdk(s) as c:
        ids = [c.messages.batches.create(requests=[entry("a", f"b{i}")]).id for i in range(5)]
        newest_first = ids[::-1]

        page = c.messages.batches.list(limit=2)
        assert [b.id for b in page.data] == newest_first[:2]
        assert page.has_more and page.first_id == ids[4] and page.last_id == ids[3]
        # The SDK follows after_id = last_id page by page.
        assert [b.id for b in c.messages.batches.list(limit=2)] == newest_first

        after = c.messages.batches.list(limit=2, after_id=ids[2])
        assert [b.id for b in after.data] == [ids[1], ids[0]] and not after.has_more
        before = c.messages.batches.list(limit=2, before_id=ids[1])
        assert [b.id for b in before.data] == [ids[3], ids[2]] and before.has_more
        # ... and before_id = first_id when paging towards the newest.
        towards_newest = c.messages.batches.list(limit=2, before_id=ids[0])
        pages = [[b.id for b in p.data] for p in towards_newest.iter_pages()]
        assert pages == [[ids[2], ids[1]], [ids[4], ids[3]]]

        assert c.messages.batches.list(limit=20, after_id=ids[0]).data == []
        default = c.messages.batches.list()
        assert len(default.data) == 5 and not default.has_more
        for bad in ({"limit": 0}, {"limit": 1001}, {"after_id": "msgbatch_nope"}):
            with pytest.raises(anthropic.BadRequestError):
                c.messages.batches.list(**bad)  # type: ignore[arg-type]
        with pytest.raises(anthropic.BadRequestError):
            c.messages.batches.list(before_id=ids[1], after_id=ids[2])


def test_cancel_before_any_entry_finished(start_sim: StartSim) -> None:
    s = start_sim(batch_processing_ms=600_000, batch_cancel_ms=300)
    with sdk(s) as c:
        created = c.messages.batches.create(requests=[entry(f"e{i}", f"q{i}") for i in range(3)])
        canceling = c.messages.batches.cancel(created.id)
        assert canceling.processing_status == "canceling"
        assert canceling.cancel_initiated_at is not None and canceling.results_url is None
        assert c.messages.batches.cancel(created.id).processing_status == "canceling"

        batch = ended(c, created.id)
        assert batch.request_counts.canceled == 3 and batch.request_counts.processing == 0
        assert batch.cancel_initiated_at == canceling.cancel_initiated_at
        assert {r.type for r in results(c, created.id).values()} == {"canceled"}
        with pytest.raises(anthropic.BadRequestError, match="already ended"):
            c.messages.batches.cancel(created.id)
    assert s.stats()["batch_output_tokens"] == 0  # canceled entries are not billed


def test_cancel_midway_gives_all_four_result_types(start_sim: StartSim) -> None:
    # Ten entries finish every 0.6 s over 6 s: cancel once the first three (errored,
    # expired, succeeded) are done (1.8 s), seconds before the last would be (6 s).
    s = start_sim(batch_processing_ms=6_000, batch_cancel_ms=50)
    requests = [
        entry("e0", "x", max_tokens=-1),
        entry("e1", "[[sim:batch=expired]]"),
        *[entry(f"e{i}", f"q{i}") for i in range(2, 10)],
    ]
    with sdk(s) as c:
        created = c.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        # The API tallies nothing until the whole batch ends, so there is no progress to
        # wait on: let the simulated time pass. A slow machine only sleeps longer, which
        # finishes more entries; the last is 4 s further away than the third.
        time.sleep(2.0)
        assert c.messages.batches.cancel(created.id).processing_status == "canceling"
        batch = ended(c, created.id)
        got = results(c, created.id)

    kinds = [got[f"e{i}"].type for i in range(10)]
    assert kinds[:3] == ["errored", "expired", "succeeded"]
    assert kinds[-1] == "canceled"
    done = kinds.index("canceled")
    assert set(kinds[3:done]) <= {"succeeded"} and set(kinds[done:]) == {"canceled"}
    counts = batch.request_counts
    assert (counts.errored, counts.expired) == (1, 1)
    assert counts.succeeded == done - 2 and counts.canceled == 10 - done


def test_delete_only_once_ended(start_sim: StartSim) -> None:
    s = start_sim(batch_processing_ms=600_000, batch_cancel_ms=300)
    with sdk(s) as c:
        created = c.messages.batches.create(requests=[entry("a", "q")])
        with pytest.raises(anthropic.BadRequestError, match="cancel it"):
            c.messages.batches.delete(created.id)
        c.messages.batches.cancel(created.id)
        with pytest.raises(anthropic.BadRequestError):
            c.messages.batches.delete(created.id)  # canceling is not ended either
        ended(c, created.id)
        deleted = c.messages.batches.delete(created.id)
        assert deleted.id == created.id and deleted.type == "message_batch_deleted"
        with pytest.raises(anthropic.NotFoundError):
            c.messages.batches.retrieve(created.id)
        with pytest.raises(anthropic.NotFoundError):
            c.messages.batches.delete(created.id)
        assert c.messages.batches.list().data == []
    with httpx.Client(base_url=s.base_url, headers={"x-api-key": "k"}) as http:
        gone = http.get(f"/v1/messages/batches/{created.id}/results")
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "not_found_error"


def test_entries_past_24_hours_expire(start_sim: StartSim) -> None:
    # Processing would take 48 simulated hours: the batch ends at the 24 h limit, with
    # the entries due after it expired.
    s = start_sim(time_scale=FAST_DAY, batch_processing_ms=48 * 3600 * 1000)
    with sdk(s) as c:
        created = c.messages.batches.create(requests=[entry(f"e{i}", f"q{i}") for i in range(4)])
        batch = ended(c, created.id)
        got = results(c, created.id)
    assert [got[f"e{i}"].type for i in range(4)] == ["succeeded"] * 2 + ["expired"] * 2
    assert batch.request_counts.expired == 2 and batch.request_counts.succeeded == 2


def test_configured_shares_expire_and_error(start_sim: StartSim) -> None:
    s = start_sim(batch_processing_ms=50, batch_expire_share=0.25, batch_error_share=0.25)
    requests = [entry(f"e{i}", f"q{i}") for i in range(8)]
    requests.append(entry("pinned", "[[sim:batch=succeeded]]"))
    with sdk(s) as c:
        created = c.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        counts = ended(c, created.id).request_counts
        got = results(c, created.id)
    # A quarter each of the eight entries without a directive; the pinned one succeeds.
    assert (counts.succeeded, counts.errored, counts.expired) == (5, 2, 2)
    assert got["pinned"].type == "succeeded"
    errored = [r for r in got.values() if r.type == "errored"]
    assert {r.error.error.type for r in errored} == {"api_error"}


def test_half_price_logged_and_not_counted_against_rpm(start_sim: StartSim, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    # One request of room per bucket: a batch entry that took it would leave the
    # synchronous call below a 429.
    s = start_sim(rpm=1, burst_s=1, batch_processing_ms=50, log=str(log))
    requests = [entry(f"e{i}", "same question" if i == 0 else f"q{i}") for i in range(6)]
    with sdk(s) as c:
        created = c.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        ended(c, created.id)
        batch_usage = results(c, created.id)["e0"].message.usage
        before = s.stats()
        sync = c.messages.with_raw_response.create(**params("same question"))
        with pytest.raises(anthropic.RateLimitError):
            c.messages.create(**params("one more"))
    assert sync.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert sync.parse().usage == batch_usage.model_copy(update={"service_tier": "standard"})

    stats = s.stats()
    sync_cost = stats["cost_usd"] - before["cost_usd"]
    list_price = (
        batch_usage.input_tokens * HAIKU_INPUT + batch_usage.output_tokens * HAIKU_OUTPUT
    ) / 1e6
    assert sync_cost == pytest.approx(list_price)
    assert stats["messages"] == 2 and stats["rate_limited"] == 1
    assert before["batch_results"]["succeeded"] == 6 and stats["ok"] == before["ok"] + 1
    assert stats["batch_cost_usd"] == before["cost_usd"]  # everything before was the batch
    assert stats["duplicates"] == 1  # the synchronous call repeated a batch entry

    s.flush_log()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    entries = [line for line in lines if line.get("batch_id") == created.id]
    synchronous = [line for line in lines if line["path"] == "/v1/messages"]
    assert len(entries) == 6 and {e["result"] for e in entries} == {"succeeded"}
    assert [line["status"] for line in synchronous] == [200, 429]
    assert all("batch_id" not in line for line in synchronous)
    first = next(e for e in entries if e["custom_id"] == "e0")
    assert first["cost_usd"] == pytest.approx(list_price / 2)
    assert first["output_tokens"] == batch_usage.output_tokens and first["status"] == 200
    assert stats["batch_cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in entries), abs=1e-6)
    assert stats["batch_output_tokens"] == sum(e["output_tokens"] for e in entries)


def too_long(n: int) -> str:
    return "x" * n


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"requests": []}, 400, "at least 1"),
        ({"requests": [entry("a" * 65, "q")]}, 400, "custom_id"),
        ({"requests": [entry("has space", "q")]}, 400, "custom_id"),
        ({"requests": [entry("", "q")]}, 400, "custom_id"),
        ({"requests": [entry("dup", "q"), entry("dup", "r")]}, 400, "duplicate"),
        ({"requests": [entry(f"e{i}", "q") for i in range(4)]}, 400, "at most 3"),
        ({"requests": [{"custom_id": "a"}]}, 400, "params"),
        ({"requests": [entry("a", "q")], "extra": 1}, 400, "extra"),
        ({"requests": [entry("a", too_long(3000))]}, 413, ""),
    ],
)
def test_create_refuses_a_malformed_batch(
    start_sim: StartSim, body: dict[str, Any], status: int, message: str
) -> None:
    s = start_sim(batch_max_requests=3, batch_max_bytes=2000)
    with sdk(s) as c, pytest.raises(anthropic.APIStatusError) as refused:
        c.messages.batches.create(requests=body["requests"], extra_body=_extra(body))
    assert refused.value.status_code == status
    assert message.lower() in refused.value.message.lower()
    assert s.stats()["batches"] == 0


def _extra(body: dict[str, Any]) -> dict[str, Any] | None:
    rest = {k: v for k, v in body.items() if k != "requests"}
    return rest or None


def test_authentication_and_spend_cap(start_sim: StartSim) -> None:
    s = start_sim(api_key="right", spend_limit_usd=0)
    with sdk(s, api_key="wrong") as c:
        with pytest.raises(anthropic.AuthenticationError):
            c.messages.batches.create(requests=[entry("a", "q")])
        with pytest.raises(anthropic.AuthenticationError):
            c.messages.batches.list()
    with sdk(s, api_key="right") as c:
        with pytest.raises(anthropic.RateLimitError) as capped:
            c.messages.batches.create(requests=[entry("a", "q")])
        assert capped.value.body["error"]["details"]["error_code"] == "enforced_spend_limit_reached"
        with pytest.raises(anthropic.NotFoundError):
            c.messages.batches.retrieve("msgbatch_unknown")


def test_a_batch_larger_than_the_messages_body_limit(start_sim: StartSim) -> None:
    # A batch may be far larger than one Messages request (256 MB against 32 MB); the
    # server's body limit, set when it starts, does not apply to it.
    s = start_sim(max_body_bytes=10_000)
    big = [entry(f"e{i}", too_long(900)) for i in range(20)]
    with sdk(s) as c:
        with pytest.raises(anthropic.APIStatusError) as refused:
            c.messages.create(**params(too_long(20_000)))
        assert refused.value.status_code == 413
        created = c.messages.batches.create(requests=big)  # type: ignore[arg-type]
    assert created.request_counts.processing == 20
