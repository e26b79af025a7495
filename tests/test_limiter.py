"""The limiter's Lua logic against a real Redis, on an injected clock (no sleeping)."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentjobs.limiter.admission import RECHECK_LEAD_S, _follow_schedule
from agentjobs.limiter.gcra import Limiter, fingerprint
from agentjobs.settings import GroupLimits
from agentjobs.simulator.buckets import Bucket


class Clock:
    def __init__(self, t_ms: float = 1_700_000_000_000.0) -> None:
        self.t = t_ms

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds * 1000.0


def make(
    state_redis: redis.Redis,
    clock: Clock,
    *,
    rpm: int = 600,
    itpm: int = 600_000,
    otpm: int = 600_000,
    concurrency: int = 100,
    burst_s: float = 2.0,
    headroom_s: float = 0.0,
    key: str = "sk-test",
    **kw: object,
) -> Limiter:
    limits = GroupLimits(rpm=rpm, itpm=itpm, otpm=otpm, concurrency=concurrency)
    return Limiter(
        state_redis,
        key_fingerprint=fingerprint(key),
        limits=lambda group: limits,
        burst_s=burst_s,
        headroom_s=headroom_s,
        now_ms=clock,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> Iterator[Clock]:
    yield Clock()


def test_fingerprint_hides_the_key_and_separates_keys(
    state_redis: redis.Redis, clock: Clock
) -> None:
    a = make(state_redis, clock, rpm=60, burst_s=1.0, key="sk-ant-secret-a")
    b = make(state_redis, clock, rpm=60, burst_s=1.0, key="sk-ant-secret-b")
    assert a.acquire("haiku", 10, 10).wait_s == 0
    assert a.acquire("haiku", 10, 10).wait_s == pytest.approx(1.0)
    assert b.acquire("haiku", 10, 10).wait_s == 0  # another key: its own buckets
    assert a.acquire("sonnet", 10, 10).wait_s == 0  # another model class too
    names = b" ".join(state_redis.keys("*"))
    assert b"secret" not in names and fingerprint("sk-ant-secret-a").encode() in names


def test_requests_burst_then_fifo_spacing(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock)  # 10 requests/s, 2 s burst: 20 at once
    waits = [lim.acquire("haiku", 10, 10).wait_s for _ in range(25)]
    assert waits[:20] == [0.0] * 20
    assert waits[20:] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    res = lim.acquire("haiku", 10, 10)
    assert res.binding == "rpm"
    clock.advance(10)  # a quiet period refills the bucket, but never beyond the burst
    assert [lim.acquire("haiku", 10, 10).wait_s for _ in range(21)][-2:] == [0.0, 0.1]


def test_headroom_keeps_our_bursts_short_of_the_server_bucket(
    state_redis: redis.Redis, clock: Clock
) -> None:
    lim = make(state_redis, clock, headroom_s=0.5)  # 10/s, server bucket 20
    waits = [lim.acquire("haiku", 10, 10).wait_s for _ in range(17)]
    assert waits == pytest.approx([0.0] * 15 + [0.1, 0.2])  # the rate itself is unchanged
    tiny = make(state_redis, clock, headroom_s=5.0, key="other")  # never below half
    assert [tiny.acquire("haiku", 10, 10).wait_s for _ in range(11)][-2:] == [0.0, 0.1]


def test_tokens_bind_and_a_huge_request_needs_a_full_bucket(
    state_redis: redis.Redis, clock: Clock
) -> None:
    lim = make(state_redis, clock, itpm=60_000)  # 1,000 input tokens/s, bucket 2,000
    first = lim.acquire("haiku", 1_500, 10)
    assert (first.wait_s, first.input_tokens) == (0.0, 1_500)
    second = lim.acquire("haiku", 1_500, 10)
    assert second.binding == "itpm" and second.wait_s == pytest.approx(1.0)
    # 5,000 tokens exceed the bucket: it waits for a full bucket, then runs into debt.
    big = lim.acquire("haiku", 5_000, 10)
    assert big.wait_s == pytest.approx(3.0)
    assert lim.acquire("haiku", 100, 10).wait_s == pytest.approx(3.0 + 5.0 - 2.0 + 0.1)


def test_output_reservation_learns_and_reconciles(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock, otpm=60_000, output_default=300)
    res = lim.acquire("haiku", 10, 1_000)
    assert res.output_tokens == 300  # no sample yet: the default, capped by max_tokens
    assert lim.acquire("haiku", 10, 50).output_tokens == 50
    lim.settle(res, input_tokens=10, output_tokens=100)
    # the learned mean (an unbiased guess: corrections move the calls booked ahead)
    assert lim.acquire("haiku", 10, 1_000).output_tokens == 100
    lim.settle(res, input_tokens=10, output_tokens=200)
    # then moving averages: mean 110; the first sample's deviation is half of it,
    # then 0.9 x 50 + 0.1 x 100 = 55 (reported, not reserved)
    assert lim.acquire("haiku", 10, 1_000).output_tokens == 110
    snap = lim.snapshot("haiku")
    assert (snap["output_estimate"], snap["output_deviation"]) == (110, 55)
    max_mode = make(state_redis, clock, otpm=60_000, output_mode="max_tokens")
    assert max_mode.acquire("opus", 10, 700).output_tokens == 700


def test_reconcile_debits_and_credits(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock, itpm=60_000)  # 1,000/s, bucket 2,000
    res = lim.acquire("haiku", 2_000, 1)
    assert lim.acquire("haiku", 1_000, 1, max_wait_s=0).wait_s == pytest.approx(1.0)
    lim.settle(res, input_tokens=500)  # we over-estimated by 1,500: give it back
    assert lim.acquire("haiku", 1_000, 1, max_wait_s=0).wait_s == 0.0
    res2 = lim.acquire("haiku", 100, 1, max_wait_s=0)
    lim.settle(res2, input_tokens=1_100)  # under-estimated by 1,000: debit it
    assert lim.acquire("haiku", 1_000, 1, max_wait_s=10).wait_s == pytest.approx(1.6)
    # A refund never makes a bucket fuller than full.
    clock.advance(60)
    lim.settle(res, input_tokens=0)
    waits = [lim.acquire("haiku", 1_000, 1).wait_s for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.0, 1.0])


def test_cancelled_call_gives_everything_back(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock, rpm=60, burst_s=1.0)
    res = lim.acquire("haiku", 10, 10)
    assert lim.acquire("haiku", 10, 10, max_wait_s=0).admitted is False
    lim.settle(res, called=False)
    assert lim.acquire("haiku", 10, 10, max_wait_s=0).admitted is True


def test_long_wait_reserves_nothing(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock, rpm=60, burst_s=1.0)
    lim.acquire("haiku", 10, 10)
    refused = [lim.acquire("haiku", 10, 10, max_wait_s=0.5) for _ in range(3)]
    assert [(r.admitted, r.wait_s) for r in refused] == [(False, 1.0)] * 3
    assert lim.snapshot("haiku")["deferred"] == 3


def test_input_calibration_is_learned(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock)
    res = lim.acquire("haiku", 1_000, 10)
    assert res.input_tokens == 1_000
    lim.settle(res, input_tokens=800, prompt_tokens=800)  # 0.8 tokens per estimated token
    assert lim.acquire("haiku", 1_000, 10).input_tokens == 800
    assert lim.snapshot("haiku")["input_ratio"] == pytest.approx(0.8)


def test_429_pauses_the_whole_group(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock)
    res = lim.acquire("sonnet", 10, 10)
    lim.settle(res, retry_after_s=3, refund_output=True)
    other_worker = make(state_redis, clock)  # any worker of the same key sees the pause
    paused = other_worker.acquire("sonnet", 10, 10)
    assert paused.binding == "pause" and paused.wait_s == pytest.approx(3.0)
    assert other_worker.paused_for("sonnet") == pytest.approx(3.0)
    assert other_worker.acquire("haiku", 10, 10).wait_s == 0  # other groups unaffected
    clock.advance(3)
    assert lim.paused_for("sonnet") == 0
    assert lim.snapshot("sonnet")["rate_limited"] == 1


def test_low_remaining_header_pulls_the_group_back(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock, headroom_s=0.5)  # 10/s, bucket 20
    res = lim.acquire("haiku", 10, 10)
    # Another client on the key: the server has 3 left. The floor keeps half the
    # headroom (0.25 s, 2.5 requests) spare on the server's side.
    headers = {"anthropic-ratelimit-requests-remaining": "3"}
    pulled = lim.settle(res, input_tokens=10, output_tokens=10, headers=headers)
    # Our bursts stop 0.5 s short of the bucket (15 of 20): we thought 14 were left.
    assert pulled == pytest.approx(1.35)  # our view: 14 -> 3 - 2.5 = 0.5 available
    assert lim.acquire("haiku", 10, 10).wait_s == pytest.approx(0.05)
    # The same reading from more responses does not pull back again (a max, not a sum).
    assert lim.settle(res, headers=headers) == 0
    # A server with more room than we think changes nothing.
    assert lim.settle(res, headers={"anthropic-ratelimit-requests-remaining": "20"}) == 0


def test_our_own_steady_state_never_triggers_a_pull_back(
    state_redis: redis.Redis, clock: Clock
) -> None:
    lim = make(state_redis, clock, headroom_s=0.5)  # bursts of 15 into a bucket of 20
    booked = [lim.acquire("haiku", 10, 10) for _ in range(30)]  # saturated, 15 ahead
    # Alone on the key, the server is a whole headroom (5) fuller than our view (0).
    view = {"anthropic-ratelimit-requests-remaining": "5"}
    assert lim.settle(booked[0], headers=view) == 0
    # Small noise does not pull back either; another client's 3 requests do.
    assert lim.settle(booked[1], headers={"anthropic-ratelimit-requests-remaining": "3"}) == 0
    assert lim.settle(booked[2], headers={"anthropic-ratelimit-requests-remaining": "2"}) > 0


def test_header_floor_ignores_reservations_the_server_has_not_seen(
    state_redis: redis.Redis, clock: Clock
) -> None:
    lim = make(state_redis, clock, headroom_s=0.0)  # 10/s, bucket 20
    first = lim.acquire("haiku", 10, 10)
    for _ in range(24):  # 19 more now, 5 scheduled 0.1-0.5 s ahead
        lim.acquire("haiku", 10, 10)
    # The server saw our 20 starts so far and reports 0 left: consistent with our view.
    assert lim.settle(first, headers={"anthropic-ratelimit-requests-remaining": "0"}) == 0
    assert lim.acquire("haiku", 10, 10).wait_s == pytest.approx(0.6)


def test_server_limit_header_wins_when_lower(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock, rpm=6_000, burst_s=1.0)  # configured 100/s
    res = lim.acquire("opus", 10, 10)
    lim.settle(res, headers={"anthropic-ratelimit-requests-limit": "60"})  # it is 1/s
    clock.advance(5)
    assert [lim.acquire("opus", 10, 10).wait_s for _ in range(2)] == pytest.approx([0.0, 1.0])
    assert lim.snapshot("opus")["dimensions"]["rpm"]["limit"] == 60


def test_concurrency_leases_expire_and_release(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock, concurrency=2, lease_ttl_s=10.0)
    assert lim.lease("haiku", "a")[0] and lim.lease("haiku", "b")[0]
    taken, lapse = lim.lease("haiku", "c")
    assert (taken, lapse) == (False, pytest.approx(10.0))
    lim.release("haiku", "a")
    assert lim.lease("haiku", "c")[0]
    assert lim.snapshot("haiku")["leases"] == 2
    clock.advance(10.001)  # holders died without releasing: their leases lapse
    assert lim.lease("haiku", "d")[0] and lim.lease("haiku", "e")[0]
    assert not lim.lease("haiku", "f")[0]


def test_a_short_lease_does_not_shorten_a_long_ones_life(
    state_redis: redis.Redis, clock: Clock
) -> None:
    # The leases set expires as a whole: it must outlive its longest lease, whichever
    # lease was taken last (by lease.lua, or by acquire taking a slot at once).
    lim = make(state_redis, clock, concurrency=4, lease_ttl_s=10.0, lease_ttl_per_token_s=0.1)
    long_ms = lim.lease_ms(64_000)  # 10 s + 6,400 s, against 10 s for the short ones
    leases = lim._keys("haiku")[2]
    assert lim.lease("haiku", "long", max_tokens=64_000)[0]
    assert lim.lease("haiku", "short", max_tokens=0)[0]
    assert state_redis.pttl(leases) > long_ms - 5_000
    assert lim.acquire("haiku", 10, 10, lease=True).wait_s == 0  # leased at once
    assert state_redis.pttl(leases) > long_ms - 5_000
    assert lim.snapshot("haiku")["leases"] == 3


def test_snapshot_reports_state(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock)
    for _ in range(22):
        lim.acquire("haiku", 10, 10)
    snap = lim.snapshot("haiku")
    assert snap["admitted"] == 22
    assert snap["dimensions"]["rpm"]["available"] == pytest.approx(-2.0)
    assert snap["dimensions"]["rpm"]["booked_ahead_s"] == pytest.approx(0.2)
    assert snap["mean_wait_ms"] == pytest.approx((100 + 200) / 22, abs=0.01)


def test_booked_calls_move_with_the_schedule(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock, headroom_s=0.0)  # 10/s, bucket 20
    booked = [lim.acquire("haiku", 10, 10) for _ in range(25)]  # 5 sleep 0.1-0.5 s
    sleeper = booked[-1]
    assert lim.drift(sleeper) == 0
    # Another client took 4 more than we knew of: R is 4 below what our view allows.
    view = {"anthropic-ratelimit-requests-remaining": "-4"}
    assert lim.settle(booked[0], headers=view) == pytest.approx(0.4)
    assert lim.drift(sleeper) == pytest.approx(0.4)  # the sleeper waits 0.4 s more
    # ...and reading the same again moves nothing (the floor counts the moved sleepers).
    assert lim.settle(booked[1], headers=view) == 0
    # Two 429s at once pause once; the pause moves everything booked as well.
    lim.settle(booked[2], retry_after_s=1, refund_output=True)
    lim.settle(booked[3], retry_after_s=1, refund_output=True)
    assert lim.drift(sleeper) == pytest.approx(1.4)
    assert lim.acquire("haiku", 10, 10).wait_s == pytest.approx(0.5 + 0.4 + 1.0 + 0.1)
    assert lim.snapshot("haiku")["rate_limited"] == 2


def test_rounded_token_headers_are_read_as_their_upper_bound(
    state_redis: redis.Redis, clock: Clock
) -> None:
    lim = make(state_redis, clock, itpm=60_000)  # 1,000 input tokens/s, bucket 2,000
    res = lim.acquire("haiku", 256, 10)
    # The server may have anything from 1,000 to 1,999 left: not less than we think.
    assert lim.settle(res, headers={"anthropic-ratelimit-input-tokens-remaining": "1000"}) == 0
    # 900 is exact (not a multiple of 1,000) and below our 1,744: pull back.
    pulled = lim.settle(res, headers={"anthropic-ratelimit-input-tokens-remaining": "900"})
    assert pulled == pytest.approx(0.844)
    # Real-time output accounting: the output header lags (generation in flight), no floor.
    out = make(state_redis, clock, otpm=60_000, key="out")
    res = out.acquire("haiku", 10, 256)
    assert out.settle(res, headers={"anthropic-ratelimit-output-tokens-remaining": "5"}) == 0
    old = make(state_redis, clock, otpm=60_000, key="old", output_mode="max_tokens")
    res = old.acquire("haiku", 10, 256)
    assert old.settle(res, headers={"anthropic-ratelimit-output-tokens-remaining": "5"}) > 0


def test_realtime_output_needs_room_for_one_token_only(
    state_redis: redis.Redis, clock: Clock
) -> None:
    # 1,000 output tokens/s, a bucket of 2,000; calls reserving 1,500 each.
    lim = make(state_redis, clock, otpm=60_000, output_default=1_500)
    waits = [lim.acquire("haiku", 10, 1_500).wait_s for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.0, 1.001])  # the server admits into debt too
    old = make(state_redis, clock, otpm=60_000, output_mode="max_tokens", key="old")
    waits = [old.acquire("haiku", 10, 1_500).wait_s for _ in range(3)]
    assert waits == pytest.approx([0.0, 1.0, 2.5])  # max_tokens must fit at the start


def test_booked_output_bound_calls_follow_real_output(
    state_redis: redis.Redis, clock: Clock
) -> None:
    # 1,000 output tokens/s, a bucket of 2,000; every call reserves 500 (no sample yet).
    lim = make(state_redis, clock, otpm=60_000, output_default=500)
    booked = [lim.acquire("haiku", 10, 1_000) for _ in range(6)]
    sleeper = booked[-1]
    assert (sleeper.binding, sleeper.wait_s) == ("otpm", pytest.approx(0.501))
    # Its start was spaced by the estimates of the calls before it: their real output
    # moves it, earlier when they generated less, later when more.
    lim.settle(booked[0], input_tokens=10, output_tokens=100)
    assert lim.drift(sleeper) == pytest.approx(-0.4)
    lim.settle(booked[1], input_tokens=10, output_tokens=700)
    assert lim.drift(sleeper) == pytest.approx(-0.2)
    # ...and a call booked now starts where the corrected schedule says.
    assert lim.acquire("haiku", 10, 1_000).wait_s == pytest.approx(0.501 + 0.5 - 0.2)
    # A refund into a bucket that filled up meanwhile frees nothing and moves nothing.
    late = lim.acquire("haiku", 10, 1_000)
    clock.advance(60)
    lim.settle(late, input_tokens=10, output_tokens=10)
    assert lim.drift(sleeper) == pytest.approx(-0.2)
    # A start the request rate decided does not follow output corrections.
    rpm = make(state_redis, clock, rpm=60, burst_s=1.0, otpm=60_000, key="rpm")
    first, second = rpm.acquire("haiku", 10, 100), rpm.acquire("haiku", 10, 100)
    assert second.binding == "rpm"
    rpm.settle(first, input_tokens=10, output_tokens=1)
    assert rpm.drift(second) == 0


def _run_output_backlog(lim: Limiter, clock: Clock, callers: int = 32) -> tuple[float, int]:
    """bench/ratelimit.py's output scenario on the injected clock: ``callers`` threads with
    a backlog, answers of 50-400 tokens after ~400 ms, a server debiting the output when
    it answers (the simulator's 2-second bucket). Each caller sleeps as admission does:
    to RECHECK_LEAD_S before its start, then to the start as it stands. Returns the
    server's utilisation over seconds 10-60 and the number of calls it refused."""
    rng = random.Random(7)
    server = Bucket(60_000, 2.0, clock.t / 1000.0)
    t_begin = clock.t
    events: list[tuple[float, int, str, Any]] = []
    seq = itertools.count()

    def at(t: float, kind: str, data: Any) -> None:
        heapq.heappush(events, (t, next(seq), kind, data))

    for _ in range(callers):
        at(clock.t, "book", None)
    used, refused = 0, 0
    while events:
        t, _, kind, data = heapq.heappop(events)
        if t - t_begin > 60_000:
            break
        clock.t = t
        if kind == "book":
            res = lim.acquire("haiku", 10, 512)
            data = [res, 0.0, 0.0]  # reservation, slept, moved
            kind = "wake"
        if kind == "wake":
            res, slept, moved = data
            left = res.wait_s + moved - slept
            if left >= 0.001:
                step = left - RECHECK_LEAD_S if left > 2 * RECHECK_LEAD_S else left
                at(t + step * 1000.0, "look", [res, slept + step, moved])
            else:
                server.refill(t / 1000.0)
                if server.level < 1:
                    refused += 1
                    lim.settle(res, retry_after_s=1, refund_output=True)
                    at(t, "book", None)
                else:
                    latency = 1000.0 * min(3.0, rng.lognormvariate(math.log(0.4), 0.5))
                    at(t + latency, "answer", (res, rng.randint(50, 400)))
        elif kind == "look":
            res, slept, _ = data
            at(t, "wake", [res, slept, lim.drift(res)])
        elif kind == "answer":
            res, output = data
            server.take(output, t / 1000.0)
            if t - t_begin >= 10_000:
                used += output
            lim.settle(res, input_tokens=10, output_tokens=output)
            at(t, "book", None)
    return used / 50_000.0, refused


def test_output_backlog_booked_ahead_runs_at_the_limit_without_429(
    state_redis: redis.Redis, clock: Clock
) -> None:
    # With a backlog, calls are booked seconds ahead, spaced by output estimates. Unless
    # the booked calls follow the real output of the calls that end meanwhile, the
    # estimate errors of a whole horizon pile up in the server's small bucket: it sits
    # full for seconds (lost throughput), then runs dry (429s, each pausing the group).
    # (Booked calls that stayed put: 0.90 of the limit and 4 calls refused here.)
    lim = make(state_redis, clock, otpm=60_000, headroom_s=0.5)
    utilisation, refused = _run_output_backlog(lim, clock)
    assert utilisation >= 0.97
    # The output of the few calls in flight is known only when they end: now and then
    # they still overdraw the small bucket (here once in ~270 calls; the bench allows 1%).
    assert refused <= 1


def test_a_sleeper_looks_again_before_its_start_and_goes_earlier(
    state_redis: redis.Redis, clock: Clock
) -> None:
    lim = make(state_redis, clock, otpm=60_000, output_default=500)  # 1,000/s, bucket 2,000
    booked = [lim.acquire("haiku", 10, 1_000) for _ in range(10)]
    sleeper = booked[-1]
    assert sleeper.wait_s == pytest.approx(2.501)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        if len(slept) == 1:  # meanwhile the first call ends, 400 tokens under its estimate
            lim.settle(booked[0], input_tokens=10, output_tokens=100)

    _follow_schedule(lim, sleeper, 10.0, sleep)
    assert slept == pytest.approx([2.501 - RECHECK_LEAD_S, RECHECK_LEAD_S - 0.4])
