# agentjobs: one image for workers, Flower, the exporter, the simulator and the Flask example.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md celeryconfig.py ./
COPY agentjobs ./agentjobs
RUN pip install ".[examples]"
COPY examples ./examples

# Never run workers as root.
RUN useradd --create-home --uid 10001 agentjobs
USER agentjobs

CMD ["agentjobs", "--help"]
