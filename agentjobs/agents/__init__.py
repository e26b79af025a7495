"""Durable agent sessions: tools, agents, the loop, session stores (docs/agents.md)."""
