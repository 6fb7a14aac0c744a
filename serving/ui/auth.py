"""Sign-in for the UI: a signed session cookie and CSRF-safe forms.

- A person signs in with their own name and password (``serving.users``: argon2 hashes, roles
  csm, manager, admin); the cookie carries the name, the role and the user's *stamp*, a hash
  that changes with the password or the role, so a new password, a new role or a removed user
  signs out every session opened before.
- For compatibility (and a first sign-in before any user exists) one of the keys in
  ``CHURN_API_KEYS`` still signs in, as an admin; the key is compared in constant time. The
  cookie holds no key, only a keyed fingerprint of it: removing a key from the settings signs
  out every session opened with it.
- The cookie is ``payload.signature`` (HMAC-SHA256 over the payload with the session secret),
  ``HttpOnly``, ``SameSite=Lax`` (``Secure`` behind HTTPS) and expires after ``SESSION_SECONDS``.
- The secret is ``CHURN_UI_SESSION_SECRET`` when the deployment sets one, else derived from
  the API keys, so a demo on loopback needs no extra setting (``churn serve`` refuses a
  non-loopback host without a configured secret: a derived one is only as strong as the keys).
- Age is bounded both ways: a cookie older than ``SESSION_SECONDS`` or issued more than
  ``CLOCK_SKEW_SECONDS`` in the future is refused.
- Sign-out revokes server-side: the session's id (a hash of its random token) is appended to
  ``<store_dir>/ui-signed-out.txt`` until the cookie would have expired anyway, so a copied
  cookie stops working on every worker, not just in the browser that signed out.
- CSRF: every POST form carries a token. The sign-in form uses a double-submit token (a random
  value in a ``SameSite=Strict`` cookie and in the form); forms of a signed-in user carry the
  session's own random token. GET pages never change anything.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from churn_settings import Settings
from serving.users import Directory, User, directory_of

SESSION_COOKIE = "churn_ui_session"
SIGNIN_COOKIE = "churn_ui_signin"
SESSION_SECONDS = 12 * 3600
CLOCK_SKEW_SECONDS = 60
REVOKED_FILE = "ui-signed-out.txt"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


KEY_SIGNIN_NAME = "admin (API key)"  # who a session opened with a settings key acts as


@dataclass(frozen=True)
class Session:
    """A signed-in person: ``name`` is who their actions are recorded as."""

    key_fingerprint: str  # "" for a user's session
    issued_at: float
    csrf: str
    name: str = KEY_SIGNIN_NAME
    role: str = "admin"
    user_stamp: str = ""  # the user's stamp when signed in ("" for a key's session)

    @property
    def sees_everyone(self) -> bool:
        """Managers and admins see every CSM's tasks and customers; a CSM sees their own."""
        return self.role in ("manager", "admin")

    @property
    def is_user(self) -> bool:
        return not self.key_fingerprint

    @property
    def session_id(self) -> str:
        """What sign-out records: a hash, so the file never holds a live CSRF token."""
        return hashlib.sha256(self.csrf.encode()).hexdigest()[:32]


class RevokedSessions:
    """Signed-out session ids, shared by every worker through one append-only file.

    Each line is ``<session id> <unix time the cookie expires>``; expired lines are ignored
    when the file is read again (it is re-read only when its size or mtime changes).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def revoke(self, session: Session, max_age: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = f"{session.session_id} {int(session.issued_at + max_age) + 1}\n"
        with open(self.path, "a", encoding="ascii") as out:
            out.write(line)
        with self._lock:
            self._ids.add(session.session_id)

    def __contains__(self, session_id: str) -> bool:
        try:
            stat = self.path.stat()
        except OSError:
            return session_id in self._ids
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            now = time.time()
            ids = set()
            with contextlib.suppress(OSError):
                for line in self.path.read_text(encoding="ascii", errors="replace").splitlines():
                    sid, _, expires = line.partition(" ")
                    if expires.isdigit() and int(expires) > now:
                        ids.add(sid)
            with self._lock:
                self._ids, self._stamp = ids, stamp
        return session_id in self._ids


class SessionSigner:
    """Issues and checks session cookies for one deployment's keys and secret."""

    def __init__(
        self, settings: Settings, max_age: int = SESSION_SECONDS, directory: Directory | None = None
    ) -> None:
        configured = settings.ui_session_secret
        keys = settings.api_key_list()
        self.secret = (
            str(configured).encode()
            if configured
            else hashlib.sha256(b"churn-ui-session\0" + "\0".join(keys).encode()).digest()
        )
        self.keys = [k.encode("utf-8") for k in keys]
        self.fingerprints = {self.fingerprint(k) for k in self.keys}
        self.max_age = max_age
        self.revoked = RevokedSessions(Path(settings.store_dir) / REVOKED_FILE)
        self.directory = directory or directory_of(settings)

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

    def _cookie(self, body: dict[str, object], now: float | None) -> str:
        body |= {"t": now or time.time(), "c": secrets.token_urlsafe(24)}
        payload = _b64(orjson.dumps(body))
        return f"{payload}.{self._sign(payload)}"

    def issue(self, key: bytes, now: float | None = None) -> str:
        """A session for a settings key (an admin)."""
        return self._cookie({"k": self.fingerprint(key)}, now)

    def issue_user(self, user: User, now: float | None = None) -> str:
        """A session for ``user``; valid while their stamp (password, role) is unchanged."""
        return self._cookie({"u": user.name, "r": user.role, "s": user.stamp}, now)

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a valid, unexpired, not signed-out cookie for a still-configured key
        or a user whose password and role are unchanged; else None."""
        if not cookie or "." not in cookie:
            return None
        if not cookie.isascii():  # a tampered cookie, not a server error
            return None
        payload, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            body = orjson.loads(_unb64(payload))
            issued, csrf = float(body["t"]), str(body["c"])
            if "u" in body:
                session = Session("", issued, csrf, str(body["u"]), str(body["r"]), str(body["s"]))
            else:
                session = Session(str(body["k"]), issued, csrf)
        except (ValueError, KeyError, TypeError):
            return None
        age = (now or time.time()) - session.issued_at
        if age > self.max_age or age < -CLOCK_SKEW_SECONDS:  # too old, or from the future
            return None
        if session.session_id in self.revoked:
            return None
        if not session.is_user:
            return session if session.key_fingerprint in self.fingerprints else None
        user = self.directory.user(session.name)
        if user is None or user.stamp != session.user_stamp:  # removed, new password or role
            return None
        return session

    def revoke(self, session: Session) -> None:
        """Sign ``session`` out on the server: its cookie is refused from now on."""
        self.revoked.revoke(session, self.max_age)


def new_signin_token() -> str:
    return secrets.token_urlsafe(24)


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two form tokens; any non-ASCII value is simply unequal."""
    if not a or not b:
        return False
    return hmac.compare_digest(str(a).encode("utf-8", "surrogateescape"),
                               str(b).encode("utf-8", "surrogateescape"))  # fmt: skip
