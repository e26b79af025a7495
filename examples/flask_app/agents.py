"""The Flask example's agent, in a module of its own: the web process imports it to
start sessions (``app.py``), and every worker that runs their steps imports it too
(``-I``), since a worker finds an agent by name in its own registry. No Flask here: a
worker needs none.

- ``celery -A app:celery_app worker ...`` (from this directory) imports it through
  ``app.py``;
- agentjobs' own workers load it by name: ``agentjobs worker haiku -I
  examples.flask_app.agents`` from the checkout's root (the compose stack's
  ``AGENT_MODULES``, .env.example).
"""

from __future__ import annotations

from agentjobs import Agent

#: A small agent; its steps run on claude.haiku.
helper = Agent(
    "flask_example",
    model="haiku",
    system="You answer in one short paragraph.",
    max_steps=4,
)
