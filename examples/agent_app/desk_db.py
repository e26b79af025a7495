"""The support desk's SQLite database: customers, bookings, invoices, and what the
tools did to them.

The file is ``$AGENT_APP_DB`` (default ``desk.sqlite3`` beside this module); every
process (the demo, each tool worker) opens it by that path. Writes are keyed by the
tool call's idempotency key: ``changes`` and ``refunds`` have it as a UNIQUE column,
so a call the loop runs again (a worker killed after the write, before the result was
checkpointed) inserts nothing and returns what the first run did. ``attempts`` logs
every run of every tool (committed before the tool's own work), which is how the crash
drill tells attempts from effects.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Bookings 1001..1000+BOOKINGS exist, one invoice each.
BOOKINGS = 40
FIRST_BOOKING = 1001
LAST_BOOKING = FIRST_BOOKING + BOOKINGS - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bookings (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
    hotel TEXT NOT NULL, check_in TEXT NOT NULL, nights INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'confirmed'
);
CREATE TABLE IF NOT EXISTS invoices (
    id INTEGER PRIMARY KEY, booking_id INTEGER NOT NULL UNIQUE REFERENCES bookings(id),
    amount_usd REAL NOT NULL, refunded_usd REAL NOT NULL DEFAULT 0
);
-- One row per effect: the idempotency key is UNIQUE, a repeated call adds nothing.
CREATE TABLE IF NOT EXISTS changes (
    idempotency_key TEXT NOT NULL UNIQUE, booking_id INTEGER NOT NULL,
    old_nights INTEGER NOT NULL, new_nights INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    idempotency_key TEXT NOT NULL UNIQUE, invoice_id INTEGER NOT NULL,
    amount_usd REAL NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL
);
-- Every run of a tool, repeated or not.
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, idempotency_key TEXT NOT NULL,
    tool TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL
);
"""

_HOTELS = ("Fjord Inn", "Harbour View", "Old Town Lodge", "Station Hotel")
_NAMES = ("Ada", "Bo", "Cai", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo")


def path() -> Path:
    return Path(os.environ.get("AGENT_APP_DB") or Path(__file__).with_name("desk.sqlite3"))


@contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """A connection in one transaction (committed on leaving, rolled back on error).

    WAL and a 30 s busy timeout: tool workers in several processes write at once.
    """
    conn = sqlite3.connect(path(), timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def create(fresh: bool = False) -> Path:
    """Create and seed the database (``fresh``: delete it first); its path."""
    p = path()
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{p}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(p, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
        if conn.execute("SELECT COUNT(*) FROM bookings").fetchone()[0] == 0:
            for i, name in enumerate(_NAMES, start=1):
                conn.execute(
                    "INSERT INTO customers VALUES (?, ?, ?)",
                    (i, name, f"{name.lower()}@example.com"),
                )
            for k in range(BOOKINGS):
                bid = FIRST_BOOKING + k
                nights = 1 + k % 5
                conn.execute(
                    "INSERT INTO bookings (id, customer_id, hotel, check_in, nights)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        bid,
                        1 + k % len(_NAMES),
                        _HOTELS[k % len(_HOTELS)],
                        f"2027-01-{1 + k % 28:02d}",
                        nights,
                    ),
                )
                conn.execute(
                    "INSERT INTO invoices (id, booking_id, amount_usd) VALUES (?, ?, ?)",
                    (bid, bid, 120.0 * nights),
                )
        conn.commit()
    finally:
        conn.close()
    return p


def record_attempt(conn: sqlite3.Connection, key: str, tool: str) -> None:
    conn.execute(
        "INSERT INTO attempts (idempotency_key, tool, pid, at) VALUES (?, ?, ?, ?)",
        (key, tool, os.getpid(), time.time()),
    )


def pause() -> None:
    """``$AGENT_APP_TOOL_DELAY_S`` of sleep after a tool's work, before it returns: the
    crash drill's window for a kill between a committed write and its checkpoint."""
    delay = float(os.environ.get("AGENT_APP_TOOL_DELAY_S") or 0)
    if delay > 0:
        time.sleep(delay)


def log_attempt(key: str, tool: str) -> None:
    """Log a run in its own transaction, so a run killed mid-way still counts."""
    with connect() as conn:
        record_attempt(conn, key, tool)


def counts() -> dict[str, Any]:
    """What the tools did: attempts vs effects, per table and per key."""
    conn = sqlite3.connect(path(), timeout=30)
    try:
        q = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "attempts": q("SELECT COUNT(*) FROM attempts"),
            "keys": q("SELECT COUNT(DISTINCT idempotency_key) FROM attempts"),
            "keys_attempted_twice": q(
                "SELECT COUNT(*) FROM (SELECT idempotency_key FROM attempts"
                " GROUP BY idempotency_key HAVING COUNT(*) > 1)"
            ),
            "attempts_by_tool": dict(
                conn.execute("SELECT tool, COUNT(*) FROM attempts GROUP BY tool").fetchall()
            ),
            "changes": q("SELECT COUNT(*) FROM changes"),
            "refunds": q("SELECT COUNT(*) FROM refunds"),
            "refunded_usd": round(q("SELECT COALESCE(SUM(amount_usd), 0) FROM refunds"), 2),
        }
    finally:
        conn.close()


if __name__ == "__main__":
    # `python examples/agent_app/desk_db.py`: the database the workers' tools use, at
    # $AGENT_APP_DB, created and seeded (kept if it exists) before they start.
    print(create())
