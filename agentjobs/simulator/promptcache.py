"""Prompt caching: prefixes marked with ``cache_control`` are written, then read.

As at Anthropic: the cache is per model; a breakpoint whose prefix is shorter than the
model's minimum caches nothing (and raises no error); the longest breakpoint prefix
already cached is read (``cache_read_input_tokens``), the longer ones after it are
written (``cache_creation_input_tokens``); a hit refreshes the entry's lifetime.
Lifetimes run on the simulated clock, so a 5-minute entry can expire in a test.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentjobs.simulator.buckets import Clock
from agentjobs.simulator.validation import Breakpoint


@dataclass
class CacheUse:
    read_tokens: int
    write_tokens: int
    write_1h_tokens: int  # part of write_tokens with the 1-hour lifetime (priced higher)
    hit: Breakpoint | None
    writes: list[Breakpoint]


NO_CACHE = CacheUse(0, 0, 0, None, [])


class PromptCache:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # prefix hash -> (expiry in simulated seconds, lifetime)
        self._entries: dict[str, tuple[float, float]] = {}

    def lookup(self, breakpoints: list[Breakpoint], min_tokens: int) -> CacheUse:
        """What a request would read and write; changes nothing (see ``commit``)."""
        usable = [b for b in breakpoints if b.tokens >= min_tokens]
        if not usable:
            return NO_CACHE
        now = self.clock()
        hit: Breakpoint | None = None
        for b in reversed(usable):
            entry = self._entries.get(b.prefix_hash)
            if entry is not None and entry[0] > now:
                hit = b
                break
        read = hit.tokens if hit else 0
        writes = [b for b in usable if b.tokens > read]
        write = writes[-1].tokens - read if writes else 0
        write_1h = 0
        prev = read
        for b in writes:
            if b.ttl_s > 300:
                write_1h += b.tokens - prev
            prev = b.tokens
        return CacheUse(read, write, write_1h, hit, writes)

    def commit(self, use: CacheUse) -> None:
        """Store the writes and refresh the hit of an admitted request."""
        if use is NO_CACHE:
            return
        now = self.clock()
        if use.hit is not None:
            self._entries[use.hit.prefix_hash] = (now + use.hit.ttl_s, use.hit.ttl_s)
        for b in use.writes:
            self._entries[b.prefix_hash] = (now + b.ttl_s, b.ttl_s)
        if len(self._entries) > 100_000:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
