"""A Flask app with a Celery app of its own, running Claude calls and agent sessions as
agentjobs tasks.

POST /jobs           body: a JSON object of complete() arguments -> 202 {"task_id", "status_url"}
GET  /jobs/<id>      -> {"task_id", "state", "result" | "error"}
POST /sessions       body: {"input": "..."} -> 202 {"session_id", "status_url"}
GET  /sessions/<id>  -> the session's result so far: status, output, steps, cost, ...

The Celery app is the project's (Flask's documented ``celery_init_app`` pattern), on the
project's broker (BROKER_URL, RESULT_BACKEND); ``agentjobs.install`` puts agentjobs'
tasks, routes and required settings on it. Its worker:
``celery -A app:celery_app worker -Q claude.haiku -P threads`` (from this directory);
or agentjobs' own on the same broker, loading the agent's module:
``agentjobs worker haiku -I examples.flask_app.agents`` (from the checkout's root).
"""

from __future__ import annotations

import os
from typing import Any

# The agent is in agents.py, which the workers import too (`-I`): a worker finds an
# agent by name in its own registry. `flask --app app` and `celery -A app` put this
# directory on sys.path.
from agents import helper
from celery import Celery
from celery.result import AsyncResult
from flask import Flask, Response, jsonify, request, url_for

import agentjobs
from agentjobs import BudgetExceededError, RequestError, Session, complete


def celery_init_app(web: Flask) -> Celery:
    """Flask's pattern: the Celery app configured from ``web.config["CELERY"]``; then
    agentjobs installed on it."""
    celery_app = Celery(web.name)
    celery_app.config_from_object(web.config["CELERY"])
    agentjobs.install(celery_app)
    celery_app.set_default()
    web.extensions["celery"] = celery_app
    return celery_app


def create_app() -> Flask:
    web = Flask(__name__)
    web.config.from_mapping(
        CELERY={
            "broker_url": os.environ.get("BROKER_URL", "redis://127.0.0.1:6379/0"),
            "result_backend": os.environ.get("RESULT_BACKEND", "redis://127.0.0.1:6379/0"),
        }
    )
    celery_init_app(web)

    @web.post("/jobs")
    def submit() -> tuple[Response, int, dict[str, str]] | tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify(error="send a JSON object of complete() arguments"), 400
        try:
            # Validated here, in the web process: a bad request is a 400 now, not a
            # failed task later. The queue follows from the model.
            job = complete.delay(**body)
        except RequestError as exc:
            return jsonify(error=str(exc)), 400
        except BudgetExceededError as exc:
            return jsonify(error=str(exc)), 429
        status_url = url_for("status", task_id=job.id)
        return jsonify(task_id=job.id, status_url=status_url), 202, {"Location": status_url}

    @web.get("/jobs/<task_id>")
    def status(task_id: str) -> Response:
        return jsonify(job_state(web.extensions["celery"], task_id))

    @web.post("/sessions")
    def start_session() -> tuple[Response, int, dict[str, str]] | tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body.get("input"):
            return jsonify(error='send {"input": "..."}'), 400
        try:
            session = helper.start(body["input"])  # returns at once; a worker runs it
        except RequestError as exc:
            return jsonify(error=str(exc)), 400
        status_url = url_for("session_state", session_id=session.id)
        headers = {"Location": status_url}
        return jsonify(session_id=session.id, status_url=status_url), 202, headers

    @web.get("/sessions/<session_id>")
    def session_state(session_id: str) -> tuple[Response, int] | Response:
        try:
            # status, output, steps, tool_calls, cost_usd, usage, ...
            return jsonify(Session(session_id).result())
        except agentjobs.AgentJobsError as exc:  # no such session
            return jsonify(error=str(exc)), 404

    return web


def job_state(celery_app: Celery, task_id: str) -> dict[str, Any]:
    """State and outcome of a task. Celery reports an unknown id as PENDING too."""
    job = AsyncResult(task_id, app=celery_app)
    out: dict[str, Any] = {"task_id": task_id, "state": job.state}
    if job.successful():
        out["result"] = job.result  # a ClaudeResult dict: text, usage, cost_usd, ...
    elif job.failed():
        # e.g. DeadLetteredError, whose message names the dead letter
        out["error"] = {"type": type(job.result).__name__, "message": str(job.result)}
    return out


app = create_app()
celery_app: Celery = app.extensions["celery"]
