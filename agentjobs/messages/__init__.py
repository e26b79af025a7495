"""agentjobs.messages."""
