"""The JSONL request log: one line per request, buffered so it costs the server little.

Lines are serialised as they come (a few microseconds each, spread evenly) and written
by ``flush``, which the server calls every second and on stop. A line::

    {"ts": 1767225600.123, "request_id": "req_...", "path": "/v1/messages",
     "model": "claude-haiku-4-5", "group": "haiku", "status": 200, "error_type": null,
     "input_tokens": 12, "output_tokens": 40, "cache_creation_input_tokens": 0,
     "cache_read_input_tokens": 0, "latency_ms": 812.5, "hash": "3f2a...", "fault": null}

A Message Batches entry that succeeded or errored gets a line of its own when its batch
ends, with the same fields (``path`` "/v1/messages/batches", ``latency_ms`` since the
batch was created) plus ``batch_id``, ``custom_id``, ``result`` and ``cost_usd`` (at
the batch price); lines of synchronous calls have no ``batch_id``.
"""

from __future__ import annotations

import json
from typing import Any, TextIO


class RequestLog:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._buffer: list[str] = []
        self._file: TextIO | None = None

    def append(self, record: dict[str, Any]) -> None:
        if self.path is not None:
            self._buffer.append(json.dumps(record, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        if not self._buffer or self.path is None:
            return
        lines, self._buffer = self._buffer, []
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._file.write("".join(lines))
        self._file.flush()

    def reopen(self, path: str | None) -> None:
        """Flush, then log to ``path`` (None: stop logging)."""
        self.close()
        self.path = path

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
