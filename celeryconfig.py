"""Celery settings for agentjobs, read from the environment (AGENTJOBS_* variables).

``agentjobs.worker.app`` loads this module with ``config_from_object``; a deployment can copy
it and change what it needs. Every value here is chosen for Claude calls: slow (2-30 s),
I/O bound, expensive, and never to be run twice.
"""

from agentjobs.settings import get_settings

_s = get_settings()

broker_url = _s.broker_url
result_backend = _s.backend_url
#: Results (and their Redis keys) expire after AGENTJOBS_RESULT_TTL_S.
result_expires = _s.result_ttl_s
# Not result_extended: it would copy the task's kwargs (the whole prompt, up to 32 MB) into
# every state written to the backend (STARTED, SUCCESS) and keep it for the result TTL.
# Flower shows names and arguments from task events; ClaudeResult carries queue and worker.
result_extended = False

# JSON only: a pickled message is refused by the worker and never executed.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Ack after the task ran, and requeue when the worker process dies, so nothing is lost;
# duplicates that this creates are made harmless by the idempotency records.
task_acks_late = True
task_reject_on_worker_lost = True
# One message per thread: prefetched messages would sit unacked behind a slow call.
worker_prefetch_multiplier = 1

broker_connection_retry_on_startup = True
broker_transport_options = {
    # Redis broker only: an unacked message is redelivered after this long (the
    # default and its reasons: settings.py, docs/reliability.md).
    "visibility_timeout": _s.visibility_timeout_s,
    # kombu sweeps for expired unacked messages every interval x throttle seconds
    # (default 10 x 10 = 100 s on top of the timeout); sweep every tenth of the timeout
    # instead (one ZRANGE under a mutex), so a killed worker's tasks come back on time.
    "unacked_restore_interval": max(1, min(10, _s.visibility_timeout_s // 10)),
    "unacked_restore_throttle": 1,
}
# Shutdown. SIGTERM (warm): running calls finish, reserved messages go back to the
# queue. SIGQUIT (cold): running calls get AGENTJOBS_SOFT_SHUTDOWN_S (Celery's soft
# shutdown), then are cancelled and, being unacked (late ack), return to the queue;
# also when idle, so that reserved retries (countdown) are handed back too.
worker_soft_shutdown_timeout = _s.soft_shutdown_s
worker_enable_soft_shutdown_on_idle = True
# Losing the broker connection does not cancel running calls: a paid answer is stored
# under its idempotency key, and the redelivered message returns it without a call.
worker_cancel_long_running_tasks_on_connection_loss = False
result_backend_transport_options = {"retry_policy": {"timeout": 5.0}}

task_routes = ("agentjobs.worker.tasks.route_task",)
task_default_queue = "claude.haiku"
task_create_missing_queues = True
task_track_started = True

# Events for Flower and `agentjobs stats` (task-sent carries the queue).
worker_send_task_events = True
task_send_sent_event = True

worker_hijack_root_logger = False
