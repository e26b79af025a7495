"""State-store round trips, counted exactly with Redis MONITOR (a test's budget, a bench's
figure).

Each command a client sends is one round trip; a command a Lua script runs inside Redis
is not, and a ``MULTI ... EXEC`` transaction is one. :class:`RoundTrips` watches one
Redis DB (the state store shares its server with the broker and the result backend, so
the DB number tells them apart) while a block runs, and names each round trip by what
it does: a script by its file name (``acquire.lua``; ``metrics_add.lua`` with the
counters it adds and its in-flight marks), a command by the concept of its key
(``HGETALL metrics``), a transaction by the concepts it touches (``MULTI ledger``).
Used by tests/test_roundtrips.py and bench/overhead.py.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

import agentjobs

#: Commands that set a connection up or load a script (once per connection or
#: process) rather than act on a key: named by the command alone.
SETUP = ("SELECT", "CLIENT", "HELLO", "AUTH", "SCRIPT")

# One MONITOR line: `1700000000.123456 [1 127.0.0.1:5555] "EVALSHA" "ab12..." "3" ...`
_LINE = re.compile(r"^\S+ \[(\d+) ([^\]]*)\] (.*)$")
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


def script_names() -> dict[str, str]:
    """SHA-1 of every Lua script shipped in the package -> its file name."""
    root = Path(agentjobs.__file__).parent
    return {
        hashlib.sha1(p.read_text(encoding="utf-8").encode()).hexdigest(): p.name
        for p in root.rglob("scripts/*.lua")
    }


def concept(key: str) -> str:
    """The concept a key belongs to: ``agentjobs:ledger:times`` -> ``ledger``; the keys of
    housekeeping keep their second part (``metrics:workers``, ``ledger:lock``)."""
    parts = key.split(":")[1:]  # without the prefix
    if parts[:2] in (["metrics", "workers"], ["ledger", "lock"]):
        return ":".join(parts[:2])
    return parts[0] if parts else key


def _script_call(name: str, args: list[str]) -> str:
    if name != "metrics_add.lua":
        return name
    # KEYS total, minute, in-flight; ARGV ttl, member to drop, member to add, its start,
    # then field/increment pairs: named by the counters it adds and the in-flight marks.
    argv = args[3 + int(args[2]) :]
    counters = sorted({f.split("|")[1] for f in argv[4::2] if f.startswith("c|")})
    marks = ("+in-flight" if argv[2] else "") + (" -in-flight" if argv[1] else "")
    return f"{name} [{' '.join(counters)}] {marks}".strip().replace("  ", " ")


class RoundTrips:
    """Every command clients send to the DB of ``url`` while :meth:`counting` runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db = int(url.rsplit("/", 1)[1])
        self.seen: list[tuple[str, list[str]]] = []  # (client address, args)
        #: Client address -> the name it set (CLIENT SETNAME), read as counting ends:
        #: how a caller tells the worker's commands from the submitter's.
        self.client_names: dict[str, str] = {}
        self._marker = f"end-of-count-{uuid.uuid4().hex}"
        #: The counter's own client, for reads the count must not see (its commands are
        #: left out). Open until counting ends.
        self.own = redis.Redis.from_url(url, single_connection_client=True)
        self._own_addr = str(self.own.client_info()["addr"])

    @contextmanager
    def counting(self, timeout: float = 10.0) -> Iterator[RoundTrips]:
        client = redis.Redis.from_url(self.url)
        ready = threading.Event()

        def read() -> None:
            with client.monitor() as m:
                # The raw line, not next_command(): its parse joins the arguments with
                # spaces, and a key or a field may hold one. (The stubs lack the
                # attribute redis-py sets.)
                conn = m.connection  # type: ignore[attr-defined]
                ready.set()
                while True:
                    raw = conn.read_response()
                    line = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
                    found = _LINE.match(line)
                    if found is None:
                        continue
                    db, who, rest = found.groups()
                    args = _ARG.findall(rest)
                    if args[:2] == ["ECHO", self._marker]:
                        return
                    if int(db) == self.db and who not in ("lua", self._own_addr):
                        self.seen.append((who, args))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"MONITOR on {self.url} did not start in {timeout:g} s")
        try:
            yield self
        finally:
            # The marker ends the reader once every command before it has been read.
            self.own.echo(self._marker)
            reader.join(timeout)
            self.client_names = {c["addr"]: c.get("name", "") for c in self.own.client_list()}
            client.close()
            self.own.close()

    def named(self) -> list[tuple[str, str]]:
        """(client address, name) of each round trip, in order."""
        scripts = script_names()
        out: list[tuple[str, str]] = []
        open_tx: dict[str, list[str]] = {}
        for who, args in self.seen:
            op = args[0].upper()
            if op == "MULTI":
                open_tx[who] = []
            elif op == "EXEC":
                out.append((who, "MULTI " + " ".join(sorted(set(open_tx.pop(who, []))))))
            elif who in open_tx:
                open_tx[who].append(concept(args[1]) if len(args) > 1 else op)
            elif op == "EVALSHA":
                name = scripts.get(args[1])
                unknown = f"EVALSHA {concept(args[3])}" if len(args) > 3 else "EVALSHA"
                out.append((who, _script_call(name, args) if name else unknown))
            elif op in SETUP or len(args) < 2:
                out.append((who, op))
            else:
                out.append((who, f"{op} {concept(args[1])}"))
        return out
