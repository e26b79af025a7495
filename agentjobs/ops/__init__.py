"""agentjobs.ops."""
