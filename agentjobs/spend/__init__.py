"""agentjobs.spend."""
