"""The project's Flask views: one sends a Claude call, one reads its outcome."""

from typing import Any

from celery.result import AsyncResult
from flask import Flask, jsonify, request

from agentjobs import complete
from proj.celery import app as celery_app

web = Flask(__name__)


@web.post("/summaries")
def summarise() -> Any:
    job = complete.delay(prompt=request.get_json()["text"], model="haiku")
    return jsonify(task_id=job.id), 202


@web.get("/summaries/<task_id>")
def summary(task_id: str) -> Any:
    job = AsyncResult(task_id, app=celery_app)
    if job.successful():
        return jsonify(state=job.state, result=job.result)
    return jsonify(state=job.state)
