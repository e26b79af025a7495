"""POST /jobs/ submits a Claude call (202 + task id); GET /jobs/<id> reports on it."""

import json

from celery.result import AsyncResult
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from jobsite.celery import app

from agentjobs import BudgetExceededError, RequestError, complete


@csrf_exempt  # a JSON API: protect it with your own authentication instead
@require_POST
def submit(request: HttpRequest) -> JsonResponse:
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JsonResponse({"error": "send a JSON object of complete() arguments"}, status=400)
    try:
        # Validated in this process: a bad request is a 400 now, not a failed task later.
        job = complete.delay(**body)
    except RequestError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    except BudgetExceededError as exc:
        return JsonResponse({"error": str(exc)}, status=429)
    status_url = reverse("job-status", args=[job.id])
    response = JsonResponse({"task_id": job.id, "status_url": status_url}, status=202)
    response["Location"] = status_url
    return response


@require_GET
def status(request: HttpRequest, task_id: str) -> JsonResponse:
    """State and outcome; Celery reports an unknown id as PENDING too."""
    job = AsyncResult(task_id, app=app)
    out: dict = {"task_id": task_id, "state": job.state}
    if job.successful():
        out["result"] = job.result  # a ClaudeResult dict: text, usage, cost_usd, ...
    elif job.failed():
        out["error"] = {"type": type(job.result).__name__, "message": str(job.result)}
    return JsonResponse(out)
