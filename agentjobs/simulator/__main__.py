"""``python -m agentjobs.simulator``: the same command as ``agentjobs sim``."""

from agentjobs.simulator.command import sim

if __name__ == "__main__":
    sim(prog_name="python -m agentjobs.simulator")
