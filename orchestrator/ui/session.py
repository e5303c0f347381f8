"""The UI's sessions and its protection against cross-site requests.

A session is a signed cookie, not a row anywhere: ``<issued>.<nonce>.<signature>``, the
signature an HMAC-SHA256 under a key derived from ``API_TOKEN``. Every replica with the same
token therefore accepts the same cookies, a restart keeps people signed in, and changing the
token signs everybody out. A session lasts ``SESSION_TTL``; signing out clears the cookie (a
copy of it stays valid until it expires, as with any bearer credential).

Without ``API_TOKEN`` the API asks for nothing, and neither does the UI: the first page sets a
session only so that actions can carry a CSRF token. There is no secret to sign it with then,
so the key is a fixed one (``OPEN_KEY``) and the pair works as a double-submit cookie: every
replica and a restarted orchestrator accept it, and another site can neither read this site's
cookie nor set one (``HttpOnly``, ``SameSite=Strict``, and the ``Origin`` checks below), so it
cannot send the matching token.

Cross-site requests: every state-changing request (``POST``) must carry the session's CSRF
token (an HMAC of the session under the same key) in the ``X-CSRF-Token`` header (htmx sends it
from the page's ``hx-headers``) or a ``csrf`` form field, and is refused when the browser says it
comes from another site (``Sec-Fetch-Site: cross-site``) or its ``Origin`` is not this host.
The cookie is ``HttpOnly`` and ``SameSite=Strict`` besides, and ``Secure`` over TLS.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

COOKIE = "weir_session"
SESSION_TTL = 12 * 3600.0
"""How long a session lasts, in seconds."""
OPEN_KEY = hashlib.sha256(b"weir-ui-session without API_TOKEN").digest()
"""The key of sessions when no ``API_TOKEN`` is set (module docstring): not a secret."""


class Sessions:
    """Issues and checks session cookies and their CSRF tokens; see the module docstring."""

    def __init__(
        self, api_token: str, *, ttl: float = SESSION_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self.required = bool(api_token)
        """Whether signing in (with ``API_TOKEN``) is needed."""
        self.ttl = ttl
        self._clock = clock
        self._token_digest = hashlib.sha256(api_token.encode()).digest()
        self._key = (
            hashlib.sha256(b"weir-ui-session\0" + api_token.encode()).digest()
            if api_token
            else OPEN_KEY
        )

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is ``API_TOKEN`` (compared in constant time, as digests)."""
        return self.required and hmac.compare_digest(
            hashlib.sha256(given.encode()).digest(), self._token_digest
        )

    def issue(self) -> str:
        """A new session cookie's value."""
        value = f"{int(self._clock())}.{secrets.token_urlsafe(12)}"
        return f"{value}.{self._sign('session', value)}"

    def valid(self, cookie: str | None) -> bool:
        """Whether ``cookie`` is a session this key signed and it has not expired."""
        if not cookie or cookie.count(".") != 2:
            return False
        value, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign("session", value)):
            return False
        try:
            issued = int(value.partition(".")[0])
        except ValueError:
            return False
        return 0 <= self._clock() - issued < self.ttl

    def csrf(self, cookie: str) -> str:
        """The CSRF token of the session ``cookie``."""
        return self._sign("csrf", cookie)

    def csrf_matches(self, cookie: str, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given, self.csrf(cookie))

    def _sign(self, purpose: str, value: str) -> str:
        message = f"{purpose}\0{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:43]


def cross_site(headers: Mapping[str, str], host: str) -> str | None:
    """Why a state-changing request looks cross-site (None when it does not).

    ``Sec-Fetch-Site`` is what browsers say themselves; ``Origin``, when sent, must name this
    host. A request with neither (curl, an old browser) is judged by its CSRF token alone.
    """
    site = headers.get("sec-fetch-site", "")
    if site == "cross-site":
        return "Sec-Fetch-Site says the request comes from another site"
    origin = headers.get("origin", "")
    if origin and origin != "null" and urlsplit(origin).netloc != host:
        return f"the request's Origin {origin!r} is not this server"
    if origin == "null":
        return "the request's Origin is opaque (null)"
    return None
