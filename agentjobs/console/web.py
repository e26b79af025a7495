"""The console's request and response: plain values, the same under WSGI and Django.

The page functions see only these, so the stand-alone server (``server.py``) and the
Django app (``console/django/``) are two thin adapters over one set of pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlencode


class BadQuery(ValueError):
    """A query parameter a page cannot use: the console answers 400 with its message."""


def whole_number(query: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """The query parameter ``name``, a whole number from ``lo`` to ``hi`` (``default``
    when absent); BadQuery for anything else, so a typo is said, never replaced."""
    raw = query.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit also takes '²', which int() refuses
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= len(str(hi)) else lo - 1
    if not lo <= value <= hi:
        raise BadQuery(f"{name} must be a whole number from {lo} to {hi}, not {raw!r}")
    return value


@dataclass
class Request:
    """One request, as the pages need it."""

    method: str
    #: The path below the console's root, always starting with ``/``.
    path: str
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    #: Where the console is mounted (``""`` stand-alone, e.g. ``/ops/console`` in Django).
    root: str = ""
    #: Who is signed in (the basic-auth or Django user), for the record of an action.
    user: str = ""
    #: Set by the console: the CSRF token the page's forms carry.
    csrf_token: str = ""

    def url(self, path: str, **query: str) -> str:
        """An absolute URL of a console page (``path`` starting with ``/``)."""
        tail = ("?" + urlencode(query)) if query else ""
        return f"{self.root}{path}{tail}"


@dataclass
class Response:
    status: int = 200
    body: str = ""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"


def redirect(location: str) -> Response:
    """A 303 after a POST: the browser GETs ``location``, so a reload repeats nothing."""
    return Response(303, "", headers=[("Location", location)])
