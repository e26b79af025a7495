"""Traces and structured logs for the task path (optional OpenTelemetry, JSON logs)."""
