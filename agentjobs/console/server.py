"""``agentjobs console``'s server: a WSGI app over ``Console``, with basic auth, on a
threaded stdlib server (no dependency; a handful of operators, not the public).

Off a loopback address it refuses to start without authentication, as ``agentjobs
flower`` does. ``wsgi_app`` is also what a WSGI server of the user's (gunicorn,
uwsgi) can run: ``gunicorn 'agentjobs.console.server:wsgi_from_settings()'``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from agentjobs.console.app import Console
from agentjobs.console.csrf import Csrf
from agentjobs.console.web import Request, Response
from agentjobs.errors import ConfigurationError

log = logging.getLogger(__name__)

#: A form is a few fields; anything bigger is refused before it is read.
MAX_BODY = 64 * 1024

StartResponse = Callable[..., Any]


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def parse_users(spec: str | None) -> dict[str, str]:
    """``user:password`` (comma-separated for several) as a dict; ConfigurationError
    for a malformed one."""
    if not spec:
        return {}
    users = {}
    for item in spec.split(","):
        name, sep, password = item.partition(":")
        if not sep or not name or not password:
            raise ConfigurationError(
                "console basic auth must be user:password (comma-separate several)"
            )
        users[name] = password
    return users


def check_address(address: str, users: dict[str, str], no_auth: bool = False) -> None:
    """Refuse a console reachable from other hosts without a password."""
    if not users and not no_auth and not is_loopback(address):
        raise ConfigurationError(
            f"the console on {address} needs authentication: --basic-auth user:password "
            "(or AGENTJOBS_CONSOLE_BASIC_AUTH), listen on 127.0.0.1 for local use, or "
            "--no-auth behind an authenticating proxy"
        )


def authorized(header: str, users: dict[str, str]) -> str | None:
    """The user an ``Authorization: Basic`` header proves, or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = users.get(name)
    # compare whatever came, so a wrong name costs the same time as a wrong password
    ok = hmac.compare_digest(password.encode(), (expected or "\0" + password).encode())
    return name if expected is not None and ok else None


def _length(environ: dict[str, Any]) -> int:
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _request(environ: dict[str, Any], user: str) -> Request:
    cookies: dict[str, str] = {}
    try:
        jar = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        cookies = {k: m.value for k, m in jar.items()}
    except CookieError:
        pass
    form: dict[str, str] = {}
    method = environ.get("REQUEST_METHOD", "GET").upper()
    if method == "POST":
        raw = environ["wsgi.input"].read(min(_length(environ), MAX_BODY))
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
    return Request(
        method=method,
        path=path or "/",
        query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
        form=form,
        cookies=cookies,
        root=environ.get("SCRIPT_NAME", ""),
        user=user,
    )


def wsgi_app(console: Console, users: dict[str, str]) -> Callable[..., Iterable[bytes]]:
    """The console as a WSGI application; with ``users``, every request needs one of them."""

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        user = ""
        if users:
            got = authorized(environ.get("HTTP_AUTHORIZATION", ""), users)
            if got is None:
                resp = Response(401, "authentication required", "text/plain; charset=utf-8")
                resp.headers.append(("WWW-Authenticate", 'Basic realm="agentjobs console"'))
                return _send(resp, start_response)
            user = got
        if _length(environ) > MAX_BODY:
            return _send(Response(413, "too large", "text/plain"), start_response)
        return _send(console.handle(_request(environ, user)), start_response)

    return application


def _send(resp: Response, start_response: StartResponse) -> list[bytes]:
    body = resp.body.encode()
    headers = [("Content-Type", resp.content_type), ("Content-Length", str(len(body)))]
    start_response(resp.status_line, [*headers, *resp.headers])
    return [body]


def wsgi_from_settings() -> Callable[..., Iterable[bytes]]:
    """A WSGI app with the users of ``AGENTJOBS_CONSOLE_BASIC_AUTH`` (required: a WSGI
    server of one's own is not known to listen on loopback only). Its CSRF secret is
    derived from that setting, so every worker process of the server accepts the tokens
    of the others."""
    from agentjobs.settings import get_settings

    spec = get_settings().console_basic_auth or ""
    users = parse_users(spec)
    if not users:
        raise ConfigurationError("set AGENTJOBS_CONSOLE_BASIC_AUTH=user:password")
    secret = hmac.new(spec.encode(), b"agentjobs.console.csrf", hashlib.sha256).digest()
    return wsgi_app(Console(csrf=Csrf(secret)), users)


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.info("console: %s - %s", self.address_string(), format % args)


def make(address: str, port: int, console: Console, users: dict[str, str]) -> ThreadingServer:
    """The server, bound (port 0: a free one; ``server.server_port`` says which)."""
    server = make_server(
        address, port, wsgi_app(console, users), ThreadingServer, handler_class=QuietHandler
    )
    assert isinstance(server, ThreadingServer)
    return server
