"""Users, passwords, API tokens, sessions and the failed-login limit, kept in the node's database.

Passwords are hashed with the standard library's scrypt (memory-hard: 16 MB and about 50 ms per check here, so a
stolen database does not give the passwords away cheaply); API tokens and session cookies are random, and only their
sha256 is kept, so the database alone lets nobody in."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from cxr_edge.node.state import State

ROLES = ("reviewer", "admin")
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # 16 MB: what OWASP lists as the minimum for scrypt
SESSION_IDLE_SECONDS = 8 * 3600  # a clinic shift; then log in again
MAX_FAILURES = 5  # failed logins per minute, per user and per address; the sixth is refused unchecked
FAILURE_WINDOW = 60.0


class AccountError(ValueError):
    """A user command that cannot be done: the message says why and what to do."""


@dataclass(frozen=True)
class User:
    name: str
    role: str


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        actual = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def is_user(state: State, name: str) -> bool:
    return bool(state.query("SELECT 1 FROM users WHERE name = ?", (name,)))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_name(name: str) -> str:
    if not (1 <= len(name) <= 64 and name.replace("_", "").replace("-", "").replace(".", "").isalnum()
            and name.isascii()):
        raise AccountError(f"user name {name!r}: 1 to 64 letters, digits, '.', '-' or '_'")
    return name


def add_user(state: State, name: str, role: str, password: str) -> None:
    check_name(name)
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise AccountError("the password must have at least 10 characters")
    with state.transaction() as db:
        if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            raise AccountError(f"user {name} exists already: `cxr-edge user remove {name}` first to replace it")
        db.execute("INSERT INTO users (name, role, password_hash, created) VALUES (?, ?, ?, ?)",
                   (name, role, hash_password(password), time.time()))


def remove_user(state: State, name: str) -> None:
    with state.transaction() as db:
        # the schema's ON DELETE CASCADE takes their tokens and sessions: logged out at once, everywhere
        if not db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount:
            raise AccountError(f"no user {name}")


def new_token(state: State, name: str) -> str:
    """A bearer token for the API, shown once: only its hash is kept."""
    token = secrets.token_urlsafe(32)
    with state.transaction() as db:
        if not db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            raise AccountError(f"no user {name}: `cxr-edge user add {name} --role reviewer` first")
        db.execute("INSERT INTO tokens (hash, user, created) VALUES (?, ?, ?)", (_sha256(token), name, time.time()))
    return token


def user_for_token(state: State, token: str) -> User | None:
    rows = state.query("SELECT u.name, u.role FROM tokens t JOIN users u ON u.name = t.user WHERE t.hash = ?",
                       (_sha256(token),))
    return User(rows[0]["name"], rows[0]["role"]) if rows else None


def _attempt(state: State, name: str, address: str) -> int | None:
    """Count the minute's failures and, in the same transaction, record this try as one until it succeeds: parallel
    tries cannot all pass the count before any is recorded. None when the limit is reached. Names are kept hashed:
    what someone typed (a patient ID in the wrong field) is not kept."""
    now, who = time.time(), _sha256(name)
    with state.transaction() as db:
        by_user, by_address = db.execute(
            "SELECT coalesce(sum(user = ?), 0), coalesce(sum(address = ?), 0) FROM login_failures WHERE time >= ?",
            (who, address, now - FAILURE_WINDOW)).fetchone()
        if by_user >= MAX_FAILURES or by_address >= MAX_FAILURES:
            return None
        db.execute("DELETE FROM login_failures WHERE time < ?", (now - 24 * 3600,))
        return db.execute("INSERT INTO login_failures (time, user, address) VALUES (?, ?, ?)",
                          (now, who, address)).lastrowid


def log_in(state: State, name: str, password: str, address: str) -> tuple[str, str] | str:
    """(session token, CSRF token) on success; otherwise why not, in words: "refused" (too many failures, the
    password not even checked) or "wrong" (unknown user or wrong password, never saying which)."""
    attempt = _attempt(state, name, address)
    if attempt is None:
        return "refused"
    rows = state.query("SELECT password_hash FROM users WHERE name = ?", (name,))
    # an unknown name costs the same scrypt as a known one: the time taken never tells which names exist
    stored = rows[0]["password_hash"] if rows else _dummy_hash()
    if not password_matches(password, stored) or not rows:
        return "wrong"  # the attempt stays recorded as a failure
    session, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = time.time()
    with state.transaction() as db:
        db.execute("DELETE FROM login_failures WHERE id = ?", (attempt,))
        db.execute("INSERT INTO sessions (hash, user, csrf, created, last_seen) VALUES (?, ?, ?, ?, ?)",
                   (_sha256(session), name, csrf, now, now))
        db.execute("DELETE FROM sessions WHERE last_seen < ?", (now - SESSION_IDLE_SECONDS,))
    return session, csrf


def session_user(state: State, session: str) -> tuple[User, str] | None:
    """The session's user and CSRF token, while it is not idle for longer than SESSION_IDLE_SECONDS."""
    now = time.time()
    rows = state.query("SELECT u.name, u.role, s.csrf, s.last_seen FROM sessions s JOIN users u ON u.name = s.user "
                       "WHERE s.hash = ?", (_sha256(session),))
    if not rows or now - rows[0]["last_seen"] > SESSION_IDLE_SECONDS:
        return None
    if now - rows[0]["last_seen"] > 60:  # one write a minute per session at most
        with state.transaction() as db:
            db.execute("UPDATE sessions SET last_seen = ? WHERE hash = ?", (now, _sha256(session)))
    return User(rows[0]["name"], rows[0]["role"]), rows[0]["csrf"]


def log_out(state: State, session: str) -> None:
    with state.transaction() as db:
        db.execute("DELETE FROM sessions WHERE hash = ?", (_sha256(session),))
