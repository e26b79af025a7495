"""The request's settings besides its content: sampling, stop sequences, metadata,
service tier, speed, streaming and ``output_config`` (JSON-schema output, effort)."""

from __future__ import annotations

from typing import Any

from agentjobs.simulator import thinking
from agentjobs.simulator.apierror import invalid

EFFORTS = ("low", "medium", "high", "xhigh", "max")
SERVICE_TIERS = ("auto", "standard_only")
SPEEDS = ("standard", "fast")


def _number(body: dict[str, Any], key: str, low: float, high: float | None) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{key}: Input should be a valid number")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise invalid(f"{key}: Input should be {bound}")
    return float(value)


def sampling(body: dict[str, Any], thinking_on: bool) -> list[str]:
    """Check the sampling and metadata settings; the stop sequences."""
    temperature = _number(body, "temperature", 0, 1)
    top_p = _number(body, "top_p", 0, 1)
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)):
        raise invalid("top_k: Input should be a valid integer")
    if top_k is not None and top_k < 0:
        raise invalid("top_k: Input should be greater than or equal to 0")
    if temperature is not None and top_p is not None:
        # Claude 4.5 models and later take one or the other.
        raise invalid(
            "`temperature` and `top_p` cannot both be specified for this model. Please use "
            "only one."
        )
    if thinking_on:
        thinking.check_sampling(body)
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list):
            raise invalid("stop_sequences: Input should be a valid list")
        for i, stop in enumerate(stops):
            if not isinstance(stop, str):
                raise invalid(f"stop_sequences.{i}: Input should be a valid string")
            if not stop.strip():
                raise invalid(
                    f"stop_sequences.{i}: stop sequences must contain non-whitespace characters"
                )
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise invalid("metadata: Input should be a valid dictionary")
        for key, value in metadata.items():
            if key != "user_id":
                raise invalid(f"metadata.{key}: Extra inputs are not permitted")
            if value is not None and not isinstance(value, str):
                raise invalid("metadata.user_id: Input should be a valid string")
    tier = body.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        raise invalid("service_tier: Input should be 'auto' or 'standard_only'")
    speed = body.get("speed")
    if speed is not None and speed not in SPEEDS:
        raise invalid("speed: Input should be 'standard' or 'fast'")
    return list(stops or [])


def stream(body: dict[str, Any]) -> bool:
    value = body.get("stream")
    if value is not None and not isinstance(value, bool):
        raise invalid("stream: Input should be a valid boolean")
    return bool(value)


def output_config(body: dict[str, Any]) -> dict[str, Any] | None:
    """Check ``output_config`` (and the older top-level ``output_format``); the JSON
    schema the answer must follow, if any."""
    config = body.get("output_config")
    if config is None and "output_format" not in body:
        return None
    schema = None
    if config is not None:
        if not isinstance(config, dict):
            raise invalid("output_config: Input should be a valid dictionary")
        for key in config:
            if key not in ("effort", "format"):
                raise invalid(f"output_config.{key}: Extra inputs are not permitted")
        effort = config.get("effort")
        if effort is not None and effort not in EFFORTS:
            raise invalid(
                "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
            )
        schema = _format(config.get("format"), "output_config.format")
    legacy = _format(body.get("output_format"), "output_format")
    if schema is not None and legacy is not None:
        raise invalid("output_format: use output_config.format only, not both")
    return schema if schema is not None else legacy


def _format(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"{path}: Input should be a valid dictionary")
    if value.get("type") != "json_schema":
        raise invalid(
            f"{path}: Input tag {value.get('type')!r} found using 'type' does not match any of "
            "the expected tags: 'json_schema'"
        )
    for key in value:
        if key not in ("type", "schema"):
            raise invalid(f"{path}.json_schema.{key}: Extra inputs are not permitted")
    schema = value.get("schema")
    if schema is None:
        raise invalid(f"{path}.json_schema.schema: Field required")
    if not isinstance(schema, dict):
        raise invalid(f"{path}.json_schema.schema: Input should be a valid dictionary")
    return schema
