"""The console: routes to pages, the CSRF check of every POST, errors as pages.

``Console.handle(request)`` is the whole application over ``web.Request``; the WSGI
server (``server.py``) and the Django views (``console/django/``) only translate.
GET never changes state; every action is a POST carrying the CSRF token (``csrf.py``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import redis

from agentjobs.console import batches, costs, deadletters, limits, overview, sessions
from agentjobs.console.csrf import COOKIE, FIELD, Csrf
from agentjobs.console.markup import h, page
from agentjobs.console.web import BadQuery, Request, Response
from agentjobs.errors import AgentJobsError

log = logging.getLogger(__name__)

Page = Callable[..., Response]

#: Content-Security-Policy: no script at all, styles inline, no framing.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
]

_ID = r"([A-Za-z0-9_.:@-]{1,200})"


class Console:
    """The console's pages. ``app`` is the Celery app whose broker the queue depths are
    read from, ``submit`` what a replay sends through (both default to the app tasks
    publish through, ``publishing_app()``, at first use); ``csrf`` holds the token
    secret (random per process)."""

    def __init__(
        self,
        *,
        app: Any = None,
        submit: Callable[..., Any] | None = None,
        csrf: Csrf | None = None,
        secure_cookies: bool = False,
    ) -> None:
        self._app = app
        self._submit = submit
        self.csrf = csrf or Csrf()
        self.secure_cookies = secure_cookies
        self.routes: list[tuple[str, re.Pattern[str], Page]] = [
            ("GET", re.compile(r"/"), lambda r: overview.overview_page(r, self.app)),
            ("GET", re.compile(r"/deadletters"), deadletters.list_page),
            ("GET", re.compile(rf"/deadletters/{_ID}"), deadletters.show_page),
            (
                "POST",
                re.compile(r"/deadletters/replay"),
                lambda r: deadletters.replay(r, self.submit),
            ),
            ("POST", re.compile(r"/deadletters/purge"), deadletters.purge),
            ("GET", re.compile(r"/sessions"), sessions.list_page),
            ("GET", re.compile(rf"/sessions/{_ID}"), sessions.show_page),
            ("POST", re.compile(rf"/sessions/{_ID}/(approve|deny|cancel)"), sessions.act),
            ("GET", re.compile(r"/batches"), batches.batches_page),
            ("GET", re.compile(r"/cost"), costs.cost_page),
            ("GET", re.compile(r"/limiter"), limits.limiter_page),
            ("POST", re.compile(r"/limiter/resume"), limits.resume),
            ("POST", re.compile(r"/limiter/pause"), limits.pause),
        ]

    @property
    def app(self) -> Any:
        if self._app is None:
            # the project's app once agentjobs.install ran on it (a Django project's,
            # with its own CELERY_BROKER_URL), as replays publish through: agentjobs'
            # own app would read the queue depths of another broker
            from agentjobs.worker.app import publishing_app

            self._app = publishing_app()
        return self._app

    @property
    def submit(self) -> Callable[..., Any]:
        if self._submit is None:
            from agentjobs.worker.tasks import complete

            self._submit = complete.apply_async
        return self._submit

    def handle(self, request: Request) -> Response:
        """Answer one request (never raises: an error is a page)."""
        nonce = request.cookies.get(COOKIE) or ""
        fresh = not nonce or len(nonce) > 64
        if fresh:
            nonce = self.csrf.new_nonce()
        request.csrf_token = self.csrf.token(nonce)
        response = self._dispatch(request, fresh)
        response.headers.extend(SECURITY_HEADERS)
        if fresh:
            response.headers.append(("Set-Cookie", self.csrf.cookie(nonce, self.secure_cookies)))
        return response

    def _dispatch(self, request: Request, fresh_nonce: bool) -> Response:
        path = request.path.rstrip("/") or "/"
        allowed = []
        for method, pattern, fn in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            if method == "POST" and (
                fresh_nonce
                or not self.csrf.valid(request.cookies.get(COOKIE), request.form.get(FIELD))
            ):
                return self._error(
                    request,
                    403,
                    "refused: the form's CSRF token is missing "
                    "or stale; reload the page and try again",
                )
            try:
                return fn(request, *match.groups())
            except BadQuery as exc:
                return self._error(request, 400, str(exc))
            except redis.RedisError as exc:
                return self._error(request, 503, f"cannot reach the state store: {exc}")
            except AgentJobsError as exc:
                return self._error(request, 400, str(exc))
            except Exception:
                log.exception("console: %s %s failed", request.method, request.path)
                return self._error(request, 500, "internal error (logged)")
        if allowed:
            resp = self._error(request, 405, f"{request.method} not allowed here")
            resp.headers.append(("Allow", ", ".join(sorted(set(allowed)))))
            return resp
        return self._error(request, 404, f"no page {request.path}")

    @staticmethod
    def _error(request: Request, status: int, message: str) -> Response:
        body = h('<p class="error" role="alert">{}</p>', message)
        return Response(status, page(request, f"Error {status}", body, section=""))
