"""The per-call context: one attempt of one ``complete`` task, or one submit.

A ``Call`` is made once per attempt from the task's kwargs and handed through every
step of the pipeline (pipeline.py). It parses the request once, resolves the model
once, and builds the token estimate and the API parameters once; steps read those and
write what they learn (a routed or downgraded request, the limiter's wait). A step that
replaces the request (routing, a budget downgrade) sets ``call.request``, which drops
every value derived from the old one.
"""

from __future__ import annotations

import time
from typing import Any

from agentjobs import catalog
from agentjobs.messages.request import AUTO_MODEL, CompleteRequest, parse_request
from agentjobs.settings import Settings, get_settings


def idempotency_key(kwargs: dict[str, Any], task_id: str) -> str:
    """A task's idempotency key: the caller's ``idempotency_key``, else the task id."""
    given = kwargs.get("idempotency_key")
    return given if isinstance(given, str) and given else task_id


class Call:
    """One attempt of one request, as every step sees it."""

    def __init__(
        self,
        kwargs: dict[str, Any],
        *,
        task: Any = None,
        key: str = "",
        attempts: int = 1,
        options: dict[str, Any] | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.kwargs = kwargs
        #: The bound Celery task (its ``request`` tells id, worker and delivery); None
        #: on the submit path.
        self.task = task
        #: The idempotency key: the caller's ``idempotency_key``, else the task id.
        self.key = key
        #: This attempt's number (1 for the first call of a key).
        self.attempts = attempts
        #: Publish options on the submit path (``queue`` is set by the queue step).
        self.options: dict[str, Any] = options if options is not None else {}
        self.settings = settings or get_settings()
        #: Milliseconds spent waiting for the limiter (written by the admission step).
        self.wait_ms = 0.0
        #: The raw answer of the Messages API call (written by the send step; the
        #: limiter settles with its usage and headers).
        self.raw: Any = None
        #: When the attempt started (``time.perf_counter``), for a cache hit's latency.
        self.started = time.perf_counter()
        self._request: CompleteRequest | None = None
        self._derived: dict[str, Any] = {}

    # -- the request, parsed once ---------------------------------------------------

    @property
    def request(self) -> CompleteRequest:
        """The validated request (RequestError on bad kwargs, raised by the step that
        first reads it, so the failure is classified like any other)."""
        if self._request is None:
            self._request = parse_request(self.kwargs)
        return self._request

    @request.setter
    def request(self, req: CompleteRequest) -> None:
        self._request = req
        self._derived.clear()

    @property
    def routed(self) -> bool:
        """False while the model is still ``"auto"`` (the routing step decides)."""
        return self.request.model != AUTO_MODEL

    def _once(self, name: str, make: Any) -> Any:
        if name not in self._derived:
            self._derived[name] = make()
        return self._derived[name]

    @property
    def model(self) -> catalog.Model:
        return self._once("model", lambda: catalog.resolve(self.request.model))

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def group(self) -> str:
        """The rate-limit group (models sharing one bucket at Anthropic)."""
        return self.model.group

    @property
    def queue(self) -> str:
        """The queue this call was delivered on, else the one its family is served by."""
        delivered = self.delivery.get("routing_key")
        return str(delivered) if delivered else catalog.queue_for(self.family)

    @property
    def input_tokens(self) -> int:
        """The one input-token estimate (limiter, budget and router share it)."""
        return self.input_estimate.total

    @property
    def input_estimate(self) -> Any:
        return self._once(
            "estimate", lambda: self.request.input_estimate(self.settings.limiter_chars_per_token)
        )

    @property
    def max_tokens(self) -> int:
        return self.request.effective_max_tokens()

    @property
    def params(self) -> dict[str, Any]:
        """The Messages API parameters, built once (cache key, the call itself)."""
        return self._once("params", self.request.api_params)

    # -- the task, on the worker ------------------------------------------------------

    @property
    def delivery(self) -> dict[str, Any]:
        info = getattr(self.task, "request", None)
        return dict(getattr(info, "delivery_info", None) or {})

    @property
    def task_id(self) -> str:
        return str(getattr(getattr(self.task, "request", None), "id", "") or "")

    @property
    def worker(self) -> str:
        return str(getattr(getattr(self.task, "request", None), "hostname", "") or "")
