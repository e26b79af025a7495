"""``agentjobs exporter``: serves ``ops/exporter.py``'s collector over HTTP.

It listens on 127.0.0.1 unless told otherwise (``--address 0.0.0.0``), like Flower:
its figures (spend, models, queue depths) are for the operators' Prometheus,
not for whoever can reach the host.
"""

from __future__ import annotations

import threading
from typing import Any

import click

from agentjobs.cli.context import CliContext, pass_cli


@click.command(
    epilog="""\b
Examples:
  agentjobs exporter                         # http://127.0.0.1:9808/metrics
  agentjobs exporter --address 0.0.0.0       # scraped from other hosts or containers
  agentjobs exporter --port 9900
  agentjobs exporter --queue refunds         # also watch a tool's own queue (@tool(queue=))
  curl -s localhost:9808/metrics | grep agentjobs_rate_limited_total
"""
)
@click.option("--port", default=9808, show_default=True, envvar="AGENTJOBS_EXPORTER_PORT")
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 (or a host's address) to be scraped from elsewhere.",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="A queue to watch beyond the claude.* ones and agentjobs.tools (a tool's own "
    "queue, @tool(queue=...)); repeat for several.",
)
@pass_cli
def exporter(cli: CliContext, port: int, address: str, queues: tuple[str, ...]) -> None:
    """Serve agentjobs metrics for Prometheus, summed over every worker and host.

    One scrape target for the whole deployment: counters and histograms come from
    the state store (AGENTJOBS_REDIS_URL), queue depth from the broker, at each scrape.
    Queue depth and live workers cover every claude.* queue, agentjobs.tools (agent
    sessions' tool calls) and each --queue, so AgentJobsNoWorker sees any of them.
    """
    # prometheus-client (the [ops] extra) only now: --help works on the core install
    from prometheus_client import start_http_server

    from agentjobs.ops.exporter import registry

    server: Any
    reg = registry(cli.app, queues)
    server, _thread = start_http_server(port, addr=address, registry=reg)
    real_port = server.server_address[1]
    click.echo(f"agentjobs exporter listening on http://{address}:{real_port}/metrics", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
