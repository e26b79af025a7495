"""Evals that fail the build: cases, runs, baselines, reports (docs/evals.md)."""
