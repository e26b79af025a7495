"""CSRF protection of the console's POSTs: an HMAC'd token bound to a cookie.

The browser gets a random nonce in a cookie (HttpOnly, SameSite=Strict); every form
carries ``HMAC(secret, nonce)``. A POST passes only with both, and they must match: a
page of another site can make the browser send the cookie (SameSite aside) but cannot
read it or compute the token without the secret. The stand-alone console's secret is
random per process; the Django app derives its own from ``SECRET_KEY``, so every web
process of the site accepts the same token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "agentjobs_console_csrf"
FIELD = "csrf_token"


class Csrf:
    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(24)

    def token(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()

    def valid(self, nonce: str | None, token: str | None) -> bool:
        """Whether a POST's form ``token`` belongs to its cookie's ``nonce``."""
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.token(nonce), token)

    @staticmethod
    def cookie(nonce: str, secure: bool = False) -> str:
        """The ``Set-Cookie`` value that gives the browser its nonce."""
        flags = "; Secure" if secure else ""
        return f"{COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Strict{flags}"
