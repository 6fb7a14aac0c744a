"""Who may use the service: UI users with roles and API keys with scopes, in one SQLite file
(``<store_dir>/users.db``, the ledger's way of persisting: transactions, so a write is all or
nothing, and every worker reads the same file).

- Users sign in to the UI with a name and a password. The name is the one the data uses for the
  customer's CSM (``csm_owner``, e.g. "Alice Moreau"), so a CSM's tasks and book of business
  are the rows with their name; it matches case-insensitively. Passwords are stored only as
  argon2id hashes (argon2-cffi's defaults, RFC 9106's second recommendation); a hash made with
  older parameters is upgraded at the next sign-in.
- Roles: ``csm`` sees their own tasks and book of business; ``manager`` sees everyone's and may
  reassign and set goals; ``admin`` is a manager who also manages users (CLI).
- API keys have a name and scopes. A key is a 256-bit random value shown once; the file holds its
  SHA-256, not the key. A fast hash is enough for a random key (there is no dictionary to try)
  and keeps the ``X-API-Key`` check of ``/score`` at microseconds. The keys in
  ``CHURN_API_KEYS`` stay valid as keys with every scope (named ``settings-1``, ...).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from churn_settings import Settings
from serving.errors import RequestError

ROLES = ("csm", "manager", "admin")
SCOPES = ("score:read", "workflows:read", "workflows:write", "admin")
ALL_SCOPES = frozenset(SCOPES)
MIN_PASSWORD_CHARS = 10
MAX_NAME_CHARS = 200

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY COLLATE NOCASE, role TEXT NOT NULL, password_hash TEXT NOT NULL,
  demo INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
  name TEXT PRIMARY KEY COLLATE NOCASE, key_sha256 TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL,
  created_at TEXT NOT NULL
);
"""
HASHER = PasswordHasher()


@functools.cache
def absent_hash() -> str:
    """Verified when the name is unknown, so a wrong name costs as long as a wrong password
    (made on first use: hashing costs tens of milliseconds, not worth paying at import)."""
    return HASHER.hash(secrets.token_urlsafe(16))


class UserError(RequestError):
    """A user or key that cannot be created as asked (the message says which and why)."""

    code = "invalid_user"


@dataclass(frozen=True)
class User:
    name: str
    role: str
    stamp: str  # changes with the password or the role: sessions issued before are refused
    demo: bool = False

    @property
    def sees_everyone(self) -> bool:
        return self.role in ("manager", "admin")


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def key_digest(key: str | bytes) -> str:
    raw = key if isinstance(key, bytes) else key.encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()


def settings_keys(settings: Settings) -> dict[str, ApiKey]:
    """The keys of ``CHURN_API_KEYS`` by digest, each with every scope (as before scopes)."""
    return {
        key_digest(key): ApiKey(f"settings-{i}", ALL_SCOPES)
        for i, key in enumerate(settings.api_key_list(), start=1)
    }


def _stamp(password_hash: str, role: str) -> str:
    return hashlib.sha256(f"{role}\0{password_hash}".encode()).hexdigest()[:16]


def _clean_name(name: str, what: str) -> str:
    text = " ".join(name.split())
    if not text or len(text) > MAX_NAME_CHARS:
        raise UserError(f"The {what} name must have 1 to {MAX_NAME_CHARS} characters.")
    if "(api key)" in text.lower():  # what a key's UI session is recorded as: not a person
        raise UserError(f"The {what} name may not contain '(API key)'.")
    return text


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(
            f"The password has {len(password)} characters; use {MIN_PASSWORD_CHARS} or more "
            "(a passphrase of a few words is easiest)."
        )


class Directory:
    """Users and keys of one deployment; the file is created on the first write (mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[sqlite3.Connection | None]:
        """One transaction (committed on success); ``None`` when reading a file not yet made."""
        if not write and not self.path.exists():
            yield None
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            if fresh:
                os.chmod(self.path, 0o600)
            con.execute("PRAGMA busy_timeout=30000")
            if write:
                con.executescript(SCHEMA)
                con.execute("BEGIN IMMEDIATE")
            yield con
            if write:
                con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def stamp(self) -> tuple[int, int] | None:
        """Changes whenever the file is written (what the key cache compares)."""
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    # ----- users -----------------------------------------------------------------------------

    def add_user(
        self, name: str, role: str, password: str, now: datetime, demo: bool = False
    ) -> User:
        name = _clean_name(name, "user")
        if role not in ROLES:
            raise UserError(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
        check_password(password)
        hashed = HASHER.hash(password)
        with self.connect(write=True) as con:
            assert con is not None
            if con.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise UserError(
                    f"A user named {name!r} exists; `churn users password` sets a new password."
                )
            con.execute(
                "INSERT INTO users (name, role, password_hash, demo, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, role, hashed, int(demo), now.isoformat(), now.isoformat()),
            )
        return User(name, role, _stamp(hashed, role), demo)

    def set_password(self, name: str, password: str, now: datetime) -> User:
        """A new password; every session of the user signs out (their stamp changes)."""
        check_password(password)
        hashed = HASHER.hash(password)
        with self.connect(write=True) as con:
            assert con is not None
            found = con.execute("SELECT name, role FROM users WHERE name = ?", (name,)).fetchone()
            if found is None:
                raise UserError(f"No user named {name!r}; `churn users list` shows them.")
            con.execute(
                "UPDATE users SET password_hash = ?, demo = 0, updated_at = ? WHERE name = ?",
                (hashed, now.isoformat(), name),
            )
        return User(found["name"], found["role"], _stamp(hashed, found["role"]))

    def remove_user(self, name: str) -> None:
        with self.connect(write=True) as con:
            assert con is not None
            if con.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise UserError(f"No user named {name!r}; `churn users list` shows them.")

    def users(self) -> list[User]:
        with self.connect() as con:
            if con is None:
                return []
            rows = con.execute(
                "SELECT name, role, password_hash, demo FROM users ORDER BY role, name"
            ).fetchall()
        return [User(r["name"], r["role"], _stamp(r["password_hash"], r["role"]), bool(r["demo"]))
                for r in rows]  # fmt: skip

    def user(self, name: str) -> User | None:
        with self.connect() as con:
            row = None if con is None else con.execute(
                "SELECT name, role, password_hash, demo FROM users WHERE name = ?", (name,)
            ).fetchone()  # fmt: skip
        if row is None:
            return None
        return User(row["name"], row["role"], _stamp(row["password_hash"], row["role"]),
                    bool(row["demo"]))  # fmt: skip

    def authenticate(self, name: str, password: str) -> User | None:
        """The user whose name and password these are, else None (same cost either way)."""
        clean = " ".join(name.split())
        with self.connect() as con:
            row = None if con is None or not clean else con.execute(
                "SELECT name, role, password_hash, demo FROM users WHERE name = ?", (clean,)
            ).fetchone()  # fmt: skip
        hashed = row["password_hash"] if row is not None else absent_hash()
        try:
            HASHER.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if HASHER.check_needs_rehash(hashed):
            hashed = HASHER.hash(password)
            with self.connect(write=True) as con:
                assert con is not None
                con.execute("UPDATE users SET password_hash = ? WHERE name = ?",
                            (hashed, row["name"]))  # fmt: skip
        return User(row["name"], row["role"], _stamp(hashed, row["role"]), bool(row["demo"]))

    # ----- API keys --------------------------------------------------------------------------

    def add_key(self, name: str, scopes: Iterable[str], now: datetime) -> str:
        """A new random key with ``scopes``; returned once, only its digest is stored."""
        name = _clean_name(name, "key")
        chosen = sorted(set(scopes))
        unknown = [s for s in chosen if s not in ALL_SCOPES]
        if unknown or not chosen:
            raise UserError(
                f"Unknown scope(s) {', '.join(unknown) or '(none given)'}; give one or more of "
                f"{', '.join(SCOPES)}."
            )
        key = secrets.token_urlsafe(32)
        with self.connect(write=True) as con:
            assert con is not None
            if con.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
                raise UserError(f"A key named {name!r} exists; `churn keys remove` it first.")
            con.execute(
                "INSERT INTO api_keys (name, key_sha256, scopes, created_at) VALUES (?, ?, ?, ?)",
                (name, key_digest(key), " ".join(chosen), now.isoformat()),
            )
        return key

    def remove_key(self, name: str) -> None:
        with self.connect(write=True) as con:
            assert con is not None
            if con.execute("DELETE FROM api_keys WHERE name = ?", (name,)).rowcount == 0:
                raise UserError(f"No key named {name!r}; `churn keys list` shows them.")

    def stored_keys(self) -> dict[str, ApiKey]:
        """Every stored key by the SHA-256 of its value."""
        with self.connect() as con:
            if con is None:
                return {}
            rows = con.execute("SELECT name, key_sha256, scopes FROM api_keys").fetchall()
        return {r["key_sha256"]: ApiKey(r["name"], frozenset(r["scopes"].split())) for r in rows}

    def key_list(self) -> list[tuple[str, list[str], str]]:
        """(name, scopes, created_at) of each stored key, for ``churn keys list``."""
        with self.connect() as con:
            if con is None:
                return []
            rows = con.execute(
                "SELECT name, scopes, created_at FROM api_keys ORDER BY name"
            ).fetchall()
        return [(r["name"], r["scopes"].split(), r["created_at"]) for r in rows]


def directory_of(settings: Settings) -> Directory:
    return Directory(settings.users_db_path)


def seed_demo_users(
    directory: Directory, csm_names: Iterable[str], now: datetime, manager: str = "Morgan Lee"
) -> list[tuple[str, str, str]]:
    """A manager and one CSM per name, each with a fresh random password (returned once, as
    ``(name, role, password)``). Re-seeding replaces earlier demo users' passwords; a real user
    of the same name is left alone. Demo users are flagged: ``churn serve`` refuses them on a
    network address, like the demo key."""
    seeded = []
    for name, role in [(manager, "manager"), *((n, "csm") for n in csm_names)]:
        existing = directory.user(name)
        if existing is not None and not existing.demo:
            continue
        if existing is not None:
            directory.remove_user(name)
        password = secrets.token_urlsafe(12)
        user = directory.add_user(name, role, password, now, demo=True)
        seeded.append((user.name, role, password))
    return seeded
