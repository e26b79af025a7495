"""agentjobs.worker."""
