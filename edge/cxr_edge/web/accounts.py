"""Users, passwords, API tokens, sessions and the failed-login limit, kept in the node's database.

Passwords are hashed with the standard library's scrypt (memory-hard: 128 MiB and about 0.46 s per check on this
project's x86_64 machine, so a stolen database does not give the passwords away cheaply); API tokens and session
cookies are random, and only their sha256 is kept, so the database alone lets nobody in."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from cxr_edge.node.state import State

ROLES = ("reviewer", "admin")
# OWASP's password storage cheat sheet for scrypt: N=2^17, r=8, p=1 (128 MiB, about half a second here); older
# hashes (N=2^14) still check, and are made again with these at the user's next login
SCRYPT = {"n": 2**17, "r": 8, "p": 1}
SCRYPT_MAXMEM = 256 * 2**20  # hashlib's default (32 MiB) is below what N=2^17 needs
SESSION_IDLE_SECONDS = 8 * 3600  # a clinic shift; then log in again
SESSION_HOURS = 12.0  # at most, however active: [web] session_hours
MAX_FAILURES = 5  # failed logins a minute for one user from one address: the sixth is refused unchecked
MAX_ADDRESS_FAILURES = 20  # failed logins a minute from one address, whatever the names tried
FAILURE_WINDOW = 60.0


class AccountError(ValueError):
    """A user command that cannot be done: the message says why and what to do."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    language: str | None = None  # their own choice; None: the box's ([web] language)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=SCRYPT_MAXMEM, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        actual = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p),
                                maxmem=SCRYPT_MAXMEM)
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def is_user(state: State, name: str) -> bool:
    return state.user_exists(name)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_name(name: str) -> str:
    if not (1 <= len(name) <= 64 and name.replace("_", "").replace("-", "").replace(".", "").isalnum()
            and name.isascii()):
        raise AccountError(f"user name {name!r}: 1 to 64 letters, digits, '.', '-' or '_'")
    return name


def add_user(state: State, name: str, role: str, password: str, language: str | None = None) -> None:
    check_name(name)
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
    language = _language(language)
    if problem := password_problem(password, name):
        raise AccountError(problem)
    if not state.add_user_row(name, role, hash_password(password), time.time(), language):
        raise AccountError(f"user {name} exists already: `cxr-edge user remove {name}` first to replace it")


def _language(code: str | None) -> str | None:
    from cxr_edge.language import LanguageError, check

    try:
        return check(code, "--language") if code else None
    except LanguageError as exc:
        raise AccountError(str(exc)) from None


def set_language(state: State, name: str, language: str | None) -> None:
    """The user's own language for the screen (None: the box's)."""
    if not state.set_user_language(name, _language(language)):
        raise AccountError(f"no user {name}")


MIN_LENGTH = 10


def password_problem(password: str, name: str = "") -> str | None:
    """Why `password` cannot be user `name`'s, or None: too short, or weak (weak_password)."""
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    return weak_password(password, name)


MIN_STRENGTH = 3  # zxcvbn's score, 0-4: 3 is "safely unguessable" (about 10^8 guesses and more)


@functools.cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def weak_password(password: str, name: str = "") -> str | None:
    """Why `password` is refused, or None: one of the 30,000 most common passwords (zxcvbn's list, shipped with the
    box), or guessable by its patterns (repeats, sequences, keyboard rows, dates, words of the user's own name)."""
    if password.lower() in _common_passwords():
        return ("the password is one of the 30,000 most common passwords: choose another, such as three or four "
                "unrelated words")
    from zxcvbn import zxcvbn

    found = zxcvbn(password[:100], user_inputs=[name])  # zxcvbn's time grows with the length: 100 is plenty
    if found["score"] < MIN_STRENGTH:
        why = found["feedback"]["warning"] or "a guessable pattern"
        return f"the password is too easy to guess ({why.rstrip('.')}): use a longer phrase of unrelated words"
    return None


def remove_user(state: State, name: str) -> None:
    """The user, and with them (the schema's cascade) their tokens and sessions: logged out at once, everywhere."""
    if not state.remove_user_row(name):
        raise AccountError(f"no user {name}")


TOKEN_DAYS = 90  # an API token's life unless told otherwise: a script's token is renewed each quarter


def new_token(state: State, name: str, label: str = "", days: float = TOKEN_DAYS) -> str:
    """A bearer token for the API named `label` (default: from the time), valid for `days`, shown once: only its
    hash is kept. A user may have several (one per script), each revoked on its own."""
    now = time.time()
    label = label or "token-" + datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d%H%M%S")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", label):
        raise AccountError(f"token name {label!r}: 1 to 64 letters, digits, '.', '-' or '_'")
    if not 0 < days <= 3650:
        raise AccountError(f"--days {days}: more than 0 and at most 3650")
    token = secrets.token_urlsafe(32)
    added = state.add_token(name, _sha256(token), now, label, now + days * 86400)
    if added == "no user":
        raise AccountError(f"no user {name}: `cxr-edge user add {name} --role reviewer` first")
    if added == "taken":
        raise AccountError(f"user {name} has a token named {label} already: `cxr-edge user revoke {name} {label}` "
                           "first, or choose another name")
    return token


def tokens(state: State, name: str) -> list[dict]:
    """The user's tokens: name, created, expires, and whether it has expired."""
    if not state.user_exists(name):
        raise AccountError(f"no user {name}")
    now = time.time()
    return [{**row, "expired": row["expires"] <= now} for row in state.tokens(name)]


def revoke_token(state: State, name: str, label: str) -> None:
    """The named token stops working at once; the user's others go on."""
    if not state.remove_token(name, label):
        raise AccountError(f"user {name} has no token named {label}: `cxr-edge user tokens {name}` lists them")


def user_for_token(state: State, token: str) -> User | None:
    """The token's user while it has not expired (nor been revoked)."""
    row = state.token_user(_sha256(token), time.time())
    return User(row["name"], row["role"], row["language"]) if row else None


def log_in(state: State, name: str, password: str, address: str) -> tuple[str, str] | str:
    """(session token, CSRF token) on success; otherwise why not, in words: "refused" (too many failures, the
    password not even checked) or "wrong" (unknown user or wrong password, never saying which). Names are kept
    hashed: what someone typed (a patient ID in the wrong field) is not kept."""
    attempt = state.record_login_try(_sha256(name), address, time.time(), FAILURE_WINDOW, MAX_FAILURES,
                                     MAX_ADDRESS_FAILURES)
    if attempt is None:
        return "refused"
    stored = state.password_hash(name)
    # an unknown name costs the same scrypt as a known one: the time taken never tells which names exist
    if not password_matches(password, stored or _dummy_hash()) or stored is None:
        return "wrong"  # the attempt stays recorded as a failure
    if not stored.startswith(f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}$"):
        state.set_password_hash(name, hash_password(password))  # made with today's parameters
    session, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    state.open_session(attempt, _sha256(session), name, csrf, time.time(), SESSION_IDLE_SECONDS)
    return session, csrf


def session_user(state: State, session: str, activity: bool = True,
                 lifetime_hours: float = SESSION_HOURS) -> tuple[User, str] | None:
    """The session's user and CSRF token, while it is not idle for longer than SESSION_IDLE_SECONDS nor older than
    `lifetime_hours`. A request that is no `activity` (the worklist's background poll) does not keep it alive."""
    now = time.time()
    row = state.session(_sha256(session))
    if row is None or now - row["last_seen"] > SESSION_IDLE_SECONDS or now - row["created"] > lifetime_hours * 3600:
        return None
    if activity and now - row["last_seen"] > 60:  # one write a minute per session at most
        state.touch_session(_sha256(session), now)
    return User(row["name"], row["role"], row["language"]), row["csrf"]


def log_out(state: State, session: str) -> None:
    state.close_session(_sha256(session))
