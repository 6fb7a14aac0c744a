"""Sign-in for the UI with the API's keys: a signed session cookie and CSRF-safe forms.

- A manager signs in once with one of the service's API keys (``CHURN_API_KEYS``); the key is
  compared in constant time, as the API does. The cookie holds no key, only a keyed fingerprint
  of it: removing a key from the settings signs out every session opened with it.
- The cookie is ``payload.signature`` (HMAC-SHA256 over the payload with the session secret),
  ``HttpOnly``, ``SameSite=Lax`` (``Secure`` behind HTTPS) and expires after ``SESSION_SECONDS``.
- The secret is ``settings.ui_session_secret`` when the deployment sets one, else derived from
  the API keys, so a demo needs no extra setting and rotating the keys rotates the sessions.
- CSRF: every POST form carries a token. The sign-in form uses a double-submit token (a random
  value in a ``SameSite=Strict`` cookie and in the form); forms of a signed-in user carry the
  session's own random token. GET pages never change anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson

from churn.settings import Settings

SESSION_COOKIE = "churn_ui_session"
SIGNIN_COOKIE = "churn_ui_signin"
SESSION_SECONDS = 12 * 3600


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    key_fingerprint: str
    issued_at: float
    csrf: str


class SessionSigner:
    """Issues and checks session cookies for one deployment's keys and secret."""

    def __init__(self, settings: Settings, max_age: int = SESSION_SECONDS) -> None:
        configured = getattr(settings, "ui_session_secret", None)
        keys = settings.api_key_list()
        self.secret = (
            str(configured).encode()
            if configured
            else hashlib.sha256(b"churn-ui-session\0" + "\0".join(keys).encode()).digest()
        )
        self.keys = [k.encode("utf-8") for k in keys]
        self.fingerprints = {self.fingerprint(k) for k in self.keys}
        self.max_age = max_age

    def fingerprint(self, key: bytes) -> str:
        return hmac.new(self.secret, b"key\0" + key, hashlib.sha256).hexdigest()[:24]

    def check_key(self, given: str) -> bytes | None:
        """The configured key equal to ``given`` (constant time over every key), else None."""
        raw = given.strip().encode("utf-8", "surrogateescape")
        found = None
        for key in self.keys:  # no early exit: timing does not reveal which key matched
            if hmac.compare_digest(raw, key):
                found = key
        return found

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, key: bytes, now: float | None = None) -> str:
        body = {"k": self.fingerprint(key), "t": now or time.time(), "c": secrets.token_urlsafe(24)}
        payload = _b64(orjson.dumps(body))
        return f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a valid, unexpired cookie for a still-configured key; else None."""
        if not cookie or "." not in cookie:
            return None
        payload, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            body = orjson.loads(_unb64(payload))
            session = Session(str(body["k"]), float(body["t"]), str(body["c"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.key_fingerprint not in self.fingerprints:
            return None
        if (now or time.time()) - session.issued_at > self.max_age:
            return None
        return session


def new_signin_token() -> str:
    return secrets.token_urlsafe(24)


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
