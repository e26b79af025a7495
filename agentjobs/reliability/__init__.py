"""agentjobs.reliability."""
