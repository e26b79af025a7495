# agentjobs: one image for the workers (model families and tools), Flower, the console,
# the exporter, the simulator, the sessions migration and the Flask example. Your agents
# and tools: an image FROM this one that copies your package in (AGENT_MODULES, -I).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md celeryconfig.py ./
COPY agentjobs ./agentjobs
# Every extra: the simulator (aiohttp), Flower and the exporter, PostgreSQL session
# records (psycopg), OpenTelemetry; and Flask and Django for the examples.
RUN pip install ".[all,examples]"
COPY examples ./examples

# Never run workers as root.
RUN useradd --create-home --uid 10001 agentjobs
USER agentjobs

CMD ["agentjobs", "--help"]
