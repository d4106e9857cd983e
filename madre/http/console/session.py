"""Console sessions: a signed cookie saying who signed in, and the CSRF token of their forms.

The cookie holds the principal's name and roles, a random session id, the CSRF token and a
fingerprint of the principal's token: an HMAC, with the server's key, of the token's
SHA-256 (the principals file's `token_sha256`), never the token. It is signed and dated
with the console's key (itsdangerous), so it cannot be forged or kept past its lifetime,
and every request checks it against the principals Madre has now: a principal removed, or
whose token changed, is signed out. The roles used are the principal's current ones.

Signing out ends the session in this process at once (its id is refused until it would
have expired anyway) and deletes the cookie in the browser. The sign-in form has a CSRF
token of its own, carried by a short-lived signed cookie, since there is no session yet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from madre.principals import Principal, Principals

SIGN_IN_SECONDS = 3600  # how long a sign-in form stays usable


@dataclasses.dataclass(frozen=True)
class Session:
    """A signed-in principal, as the cookie and the principals agree."""

    sid: str
    principal: Principal
    csrf: str
    expires_at: float

    def csrf_ok(self, given: str | None) -> bool:
        return isinstance(given, str) and hmac.compare_digest(self.csrf.encode(),
                                                              given.encode())


def _timed(secret: bytes, salt: str, clock: Callable[[], float]) -> URLSafeTimedSerializer:
    class Signer(TimestampSigner):  # dated by the clock given (tests move it)
        def get_timestamp(self) -> int:
            return int(clock())

    return URLSafeTimedSerializer(secret, salt=salt, signer=Signer)


class Sessions:
    """Issues, reads and ends console sessions for the principals of one Madre."""

    def __init__(self, principals: Principals, secret: bytes, *, lifetime: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._by_name = {p.name: (digest, p) for digest, p in principals.by_hash}
        self._key = secret
        self.lifetime = lifetime
        self._clock = clock
        self._cookie = _timed(secret, "madre.console.session", clock)
        self._sign_in = _timed(secret, "madre.console.sign-in", clock)
        self._ended: dict[str, float] = {}  # session id -> when it would have expired
        self._lock = threading.Lock()

    def _fingerprint(self, token_sha256: str) -> str:
        return hmac.new(self._key, token_sha256.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, principal: Principal) -> tuple[str, Session]:
        """A new session for `principal`: the cookie's value, and the session."""
        digest, _ = self._by_name[principal.name]
        sid, csrf = secrets.token_urlsafe(16), secrets.token_urlsafe(24)
        value = self._cookie.dumps({"sid": sid, "name": principal.name,
                                    "roles": sorted(principal.roles), "csrf": csrf,
                                    "key": self._fingerprint(digest)})
        return value, Session(sid, principal, csrf, self._clock() + self.lifetime)

    def read(self, value: str | None) -> Session | None:
        """The session the cookie holds, or None: missing, forged, expired, signed out, or
        for a principal that is gone or whose token changed."""
        if not value:
            return None
        try:
            payload, signed_at = self._cookie.loads(value, max_age=int(self.lifetime),
                                                    return_timestamp=True)
        except BadData:
            return None
        if not isinstance(payload, dict) or not all(
                isinstance(payload.get(k), str) for k in ("sid", "name", "csrf", "key")):
            return None
        known = self._by_name.get(payload["name"])
        if known is None or not hmac.compare_digest(self._fingerprint(known[0]),
                                                    payload["key"]):
            return None
        with self._lock:
            if payload["sid"] in self._ended:
                return None
        return Session(payload["sid"], known[1], payload["csrf"],
                       signed_at.timestamp() + self.lifetime)

    def end(self, session: Session) -> None:
        """Sign out: this session id is refused from now on (until it expires anyway)."""
        now = self._clock()
        with self._lock:
            self._ended = {sid: until for sid, until in self._ended.items() if until > now}
            self._ended[session.sid] = session.expires_at

    # ------------------------------------------------------------------ the sign-in form

    def sign_in_form(self) -> tuple[str, str]:
        """A CSRF token for one sign-in form, and the signed cookie that vouches for it."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._sign_in.dumps(nonce)

    def sign_in_ok(self, cookie: str | None, given: Any) -> bool:
        """Whether the sign-in form's token is the one its cookie vouches for."""
        if not cookie or not isinstance(given, str) or not given:
            return False
        try:
            nonce = self._sign_in.loads(cookie, max_age=SIGN_IN_SECONDS)
        except BadData:
            return False
        return isinstance(nonce, str) and hmac.compare_digest(nonce.encode(), given.encode())
