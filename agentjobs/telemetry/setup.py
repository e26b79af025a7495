"""Whether this process traces, and the tracer provider built from ``OTEL_*`` when the
application has set none.

Only the standard variables are read here (the SDK reads the rest itself:
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
``OTEL_BSP_*``, the exporters' ``OTEL_EXPORTER_OTLP_*``); agentjobs adds one switch,
``AGENTJOBS_OTEL``. Telemetry never fails a call: a provider that cannot be built is
one logged error, and tracing stays off in that process.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Any

from agentjobs.settings import get_settings

log = logging.getLogger(__name__)

#: Variables that say an exporter is wanted (their presence turns ``auto`` on).
_EXPORTER_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@cache
def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("agentjobs")
    except PackageNotFoundError:  # pragma: no cover - a checkout that is not installed
        return "0"


def _provider_set() -> bool:
    """Whether the application (or ``opentelemetry-instrument``) has set a provider."""
    from opentelemetry import trace as otel

    return not isinstance(otel.get_tracer_provider(), otel.ProxyTracerProvider)


def _exporters_named() -> list[str]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "")
    return [n.strip() for n in names.split(",") if n.strip() and n.strip() != "none"]


def enabled() -> bool:
    """Whether spans are wanted: see ``trace``'s docstring for the rules."""
    mode = get_settings().otel
    if mode == "off" or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip() == "none" and not _provider_set():
        return False  # the standard way to say "no traces"
    if mode == "on" or _provider_set():
        return True
    return bool(_exporters_named() or any(os.environ.get(v) for v in _EXPORTER_VARS))


def may_turn_on() -> bool:
    """Whether tracing, off now, may turn on later in this process (``auto``: the
    application may set its provider after the first span was asked for)."""
    return (
        get_settings().otel == "auto"
        and os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"
    )


def configure() -> bool:
    """Set a global SDK provider exporting to what ``OTEL_TRACES_EXPORTER`` names
    (default ``otlp``), unless the application has set one already; False when none
    could be built (logged once)."""
    if _provider_set():
        return True
    try:
        provider = _build()
    except Exception as exc:  # an exporter not installed, a bad variable
        log.error("OpenTelemetry tracing is off in this process: %s", exc)
        return False
    from opentelemetry import trace as otel

    otel.set_tracer_provider(provider)
    return True


def _build() -> Any:
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise RuntimeError(
            "opentelemetry-sdk is not installed (pip install 'agentjobs[otel]')"
        ) from None
    from importlib.metadata import entry_points

    service = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "agentjobs"}
    provider = TracerProvider(resource=Resource.create(service))
    for name in _exporters_named() or ["otlp"]:
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            raise RuntimeError(
                f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides "
                "(e.g. pip install opentelemetry-exporter-otlp for otlp)"
            )
        exporter = next(iter(found)).load()()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
