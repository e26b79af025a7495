"""agentjobs.limiter."""
