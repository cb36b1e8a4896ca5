"""The screen's users, their API tokens, sessions and failed logins. Only hashes of passwords, tokens, sessions and
typed names are kept; the rules (who may log in, how often) are cxr_edge.web.accounts'."""

from __future__ import annotations


class Accounts:
    def user_exists(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM users WHERE name = ?", (name,)))

    def add_user_row(self, name: str, role: str, password_hash: str, now: float, language: str | None = None) -> bool:
        """False, and nothing written, when the name is taken."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                return False
            db.execute("INSERT INTO users (name, role, password_hash, created, language) VALUES (?, ?, ?, ?, ?)",
                       (name, role, password_hash, now, language))
            return True

    def set_user_language(self, name: str, language: str | None) -> bool:
        """False when there is no such user."""
        with self._transaction() as db:
            return bool(db.execute("UPDATE users SET language = ? WHERE name = ?", (language, name)).rowcount)

    def remove_user_row(self, name: str) -> bool:
        """False when there is no such user. The schema's ON DELETE CASCADE takes their tokens and sessions."""
        with self._transaction() as db:
            return bool(db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount)

    def add_token(self, name: str, token_hash: str, now: float, label: str, expires: float) -> str:
        """"added"; or, with nothing written, "no user" or "taken" (the user has a token of that name)."""
        with self._transaction() as db:
            if not db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                return "no user"
            if db.execute("SELECT 1 FROM tokens WHERE user = ? AND name = ?", (name, label)).fetchone():
                return "taken"
            db.execute("INSERT INTO tokens (hash, user, created, name, expires) VALUES (?, ?, ?, ?, ?)",
                       (token_hash, name, now, label, expires))
            return "added"

    def token_user(self, token_hash: str, now: float) -> dict | None:
        rows = self.query("SELECT u.name, u.role, u.language FROM tokens t JOIN users u ON u.name = t.user "
                          "WHERE t.hash = ? AND t.expires > ?", (token_hash, now))
        return rows[0] if rows else None

    def tokens(self, name: str) -> list[dict]:
        """A user's tokens (never their hashes): name, created, expires; oldest first."""
        return self.query("SELECT name, created, expires FROM tokens WHERE user = ? ORDER BY created, name", (name,))

    def remove_token(self, name: str, label: str) -> bool:
        with self._transaction() as db:
            return bool(db.execute("DELETE FROM tokens WHERE user = ? AND name = ?", (name, label)).rowcount)

    def set_password_hash(self, name: str, password_hash: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name))

    def password_hash(self, name: str) -> str | None:
        rows = self.query("SELECT password_hash FROM users WHERE name = ?", (name,))
        return rows[0]["password_hash"] if rows else None

    def record_login_try(self, who: str, address: str, now: float, window: float, limit: int,
                         address_limit: int) -> int | None:
        """Count the window's failures and, in the same transaction, record this try as one until it succeeds:
        parallel tries cannot all pass the count before any is recorded. None when `limit` is reached for this user
        from this address (so tries from elsewhere cannot lock a clinician out), or `address_limit` from this address
        for any names."""
        with self._transaction() as db:
            pair, by_address = db.execute(
                "SELECT coalesce(sum(user = ? AND address = ?), 0), coalesce(sum(address = ?), 0) FROM login_failures "
                "WHERE time >= ?", (who, address, address, now - window)).fetchone()
            if pair >= limit or by_address >= address_limit:
                return None
            db.execute("DELETE FROM login_failures WHERE time < ?", (now - 24 * 3600,))
            return db.execute("INSERT INTO login_failures (time, user, address) VALUES (?, ?, ?)",
                              (now, who, address)).lastrowid

    def open_session(self, attempt: int, session_hash: str, name: str, csrf: str, now: float,
                     idle_seconds: float) -> None:
        """A successful login: its try is no failure, its session begins, idle ones end."""
        with self._transaction() as db:
            db.execute("DELETE FROM login_failures WHERE id = ?", (attempt,))
            db.execute("INSERT INTO sessions (hash, user, csrf, created, last_seen) VALUES (?, ?, ?, ?, ?)",
                       (session_hash, name, csrf, now, now))
            db.execute("DELETE FROM sessions WHERE last_seen < ?", (now - idle_seconds,))

    def session(self, session_hash: str) -> dict | None:
        rows = self.query("SELECT u.name, u.role, u.language, s.csrf, s.created, s.last_seen FROM sessions s "
                          "JOIN users u ON u.name = s.user WHERE s.hash = ?", (session_hash,))
        return rows[0] if rows else None

    def touch_session(self, session_hash: str, now: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE sessions SET last_seen = ? WHERE hash = ?", (now, session_hash))

    def close_session(self, session_hash: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM sessions WHERE hash = ?", (session_hash,))
