from agentjobs.cli import main

main()
