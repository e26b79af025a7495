"""``agentjobs sim``: the simulator as a process.

One option per SimConfig field, generated, so ``--help`` can never miss a setting;
each also reads ``AGENTJOBS_SIM_<FIELD>``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from agentjobs.simulator.config import ENV_PREFIX, OTPM_MODES, SimConfig, field_type, optional

EPILOG = """
\b
Directives: put these in any prompt text to steer one request.
  [[sim:output_tokens=N]]  answer with N tokens (still cut at max_tokens)
  [[sim:latency_ms=N]]     the whole answer takes N simulated ms (times --time-scale)
  [[sim:error=CODE]]       answer with that error: 400 401 402 403 404 413 429
                           500 504 529, or "spend" (enforced_spend_limit_reached)
  [[sim:fault=KIND]]       force a fault: drop, slow, 529, 500 or stream_error
  [[sim:tool_rounds=N]]    with tools: call tools for N rounds, then answer text
  [[sim:parallel=N]]       N tool calls in one answer
  [[sim:thinking_tokens=N]] with thinking on: think N tokens (at most the budget)
  [[sim:stop_reason=R]]    stop half-way with pause_turn, refusal or
                           model_context_window_exceeded
  [[sim:batch=RESULT]]     a Message Batches entry comes back succeeded, errored
                           (500 api_error) or expired

\b
Admin routes:
  GET  /_sim/health        {"ok": true}
  GET  /_sim/stats         counters (?hashes=1 adds calls_by_hash, ok_by_hash)
  POST /_sim/reset         zero counters, refill buckets, empty the prompt cache
  GET|POST /_sim/config    read or change settings (JSON object of fields)

\b
Example:
  agentjobs sim --port 8788 --rpm 50 --itpm 30000 --otpm 8000 --fault-529 0.02 &
  ANTHROPIC_BASE_URL=http://127.0.0.1:8788 ANTHROPIC_API_KEY=x python my_app.py
"""


def _option(f: dataclasses.Field[Any]) -> Callable[[Any], Any]:
    flag = "--" + f.name.replace("_", "-")
    kind = field_type(f)
    help_text: str = f.metadata["help"]
    envvar = ENV_PREFIX + f.name.upper()
    if kind is bool:
        return click.option(
            f"{flag}/--no-{flag[2:]}",
            f.name,
            default=f.default,
            show_default=True,
            envvar=envvar,
            show_envvar=True,
            help=help_text,
        )
    click_type: Any = click.Choice(OTPM_MODES) if f.name == "otpm_mode" else kind
    return click.option(
        flag,
        f.name,
        type=click_type,
        default=f.default,
        show_default=f.default is not None,
        envvar=envvar,
        show_envvar=True,
        help=help_text + (" [default: unset]" if optional(f) and f.default is None else ""),
    )


def _with_config_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for f in reversed(dataclasses.fields(SimConfig)):
        fn = _option(f)(fn)
    return fn


@click.command("sim", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, envvar=ENV_PREFIX + "HOST",
              show_envvar=True, help="Interface to listen on.")  # fmt: skip
@click.option("--port", default=8788, show_default=True, envvar=ENV_PREFIX + "PORT",
              show_envvar=True, help="Port to listen on (0: a free one).")  # fmt: skip
@_with_config_options
def sim(host: str, port: int, **fields: Any) -> None:
    """Run the Anthropic-compatible simulator (POST /v1/messages, count_tokens, batches).

    Prints "agentjobs simulator listening on URL" once ready; stops cleanly on
    SIGTERM or SIGINT. Durations are simulated and multiplied by --time-scale.
    """
    try:
        config = SimConfig(**fields)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    asyncio.run(_main(config, host, port))


async def _main(config: SimConfig, host: str, port: int) -> None:
    from agentjobs.simulator.runner import serve

    def ready(url: str) -> None:
        print(f"agentjobs simulator listening on {url}", flush=True)

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await serve(config, host, port, ready)
    except asyncio.CancelledError:
        print("agentjobs simulator stopped", file=sys.stderr, flush=True)
