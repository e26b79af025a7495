"""agentjobs.api."""
