"""The one view: a Django request in, the console's page out, for staff members only.

The console checks its own CSRF token on every POST (``console/csrf.py``), with a
secret derived from ``SECRET_KEY`` so every web process of the site agrees; Django's
CSRF middleware is told to leave these views to it (its token is not in the
console's forms).
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from agentjobs.console.app import Console
from agentjobs.console.csrf import Csrf
from agentjobs.console.web import Request


@cache
def console(secure: bool) -> Console:
    secret = hmac.new(
        str(settings.SECRET_KEY).encode(), b"agentjobs.console.csrf", hashlib.sha256
    ).digest()
    return Console(csrf=Csrf(secret), secure_cookies=secure)


@csrf_exempt
@staff_member_required
def page(request: HttpRequest, path: str = "") -> HttpResponse:
    full = request.path
    root = full[: len(full) - len(path)].rstrip("/") if path else full.rstrip("/")
    answer = console(request.is_secure()).handle(
        Request(
            method=request.method or "GET",
            path="/" + path,
            query={k: v for k, v in request.GET.items()},
            form={k: v for k, v in request.POST.items()} if request.method == "POST" else {},
            cookies=dict(request.COOKIES),
            root=root,
            user=request.user.get_username(),
        )
    )
    response = HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
    for name, value in answer.headers:
        if name == "Set-Cookie":
            # the console's cookie, path scoped to where it is mounted
            nonce = value.split(";", 1)[0].split("=", 1)[1]
            response.set_cookie(
                value.split("=", 1)[0],
                nonce,
                path=(root or "") + "/",
                httponly=True,
                samesite="Strict",
                secure=request.is_secure(),
            )
        else:
            response[name] = value
    return response
