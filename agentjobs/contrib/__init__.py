"""agentjobs.contrib."""
