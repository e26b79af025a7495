"""Queue depth, read from the broker itself: the leading indicator of a backlog.

One code path for both brokers: a passive ``queue_declare`` through kombu returns the
broker's own message count. On Redis that is the ``LLEN`` of the queue's list plus its
priority sub-lists; on RabbitMQ it is the queue's ready-message count. Messages a worker
has taken but not yet acknowledged are not waiting, so they are not counted (they show
as calls in flight). A queue that does not exist yet has depth 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from kombu.exceptions import ChannelError, OperationalError

from agentjobs import catalog

#: Agent sessions' tool calls (``agents/tool.py``'s TOOLS_QUEUE; ops sits below the
#: agents and worker layers, so the name is spelled here too, and a test keeps them equal).
TOOLS_QUEUE = "agentjobs.tools"


def known_queues(extra: Iterable[str] = ()) -> list[str]:
    """The queues agentjobs routes to: one per model family, the tools queue, then
    ``extra`` (a tool's own queue, ``@tool(queue=...)``: ``agentjobs exporter --queue``)."""
    names = [catalog.queue_for(f) for f in catalog.FAMILIES] + [TOOLS_QUEUE, *extra]
    return list(dict.fromkeys(names))


def queue_depths(app: Any, queues: Iterable[str] | None = None) -> dict[str, int]:
    """Waiting messages per queue, as ``app``'s broker counts them.

    Raises ``kombu.exceptions.OperationalError`` when the broker cannot be reached.
    """
    names = list(queues) if queues is not None else known_queues()
    depths: dict[str, int] = {}
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1)
        for name in names:
            # A fresh channel per queue: RabbitMQ closes the channel on a passive
            # declare of a missing queue.
            channel = conn.channel()
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except ChannelError:
                depths[name] = 0
            except Exception as exc:
                if _is_not_found(exc):
                    depths[name] = 0
                else:
                    raise OperationalError(f"queue depth of {name}: {exc}") from exc
            finally:
                with contextlib.suppress(Exception):  # the broker may have closed it
                    channel.close()
    return depths


def _is_not_found(exc: Exception) -> bool:
    """AMQP's 404 NOT_FOUND on a passive declare (py-amqp raises NotFound)."""
    return getattr(exc, "code", None) == 404 or type(exc).__name__ == "NotFound"
