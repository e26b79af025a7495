"""A Flask app that runs Claude calls as agentjobs tasks.

POST /jobs       body: a JSON object of complete() arguments -> 202 {"task_id", "status_url"}
GET  /jobs/<id>  -> {"task_id", "state", "result" | "error"}
"""

from __future__ import annotations

from typing import Any

from celery.result import AsyncResult
from flask import Flask, Response, jsonify, request, url_for

from agentjobs import BudgetExceededError, RequestError, complete
from agentjobs import app as celery_app


def create_app() -> Flask:
    web = Flask(__name__)

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
        return jsonify(job_state(task_id))

    return web


def job_state(task_id: str) -> dict[str, Any]:
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
