"""The outbox: each object for each destination queued once, in the transaction that records what it is about;
sent, retried with backoff kept across restarts, or failed for good with the peer's message."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

@dataclass(frozen=True)
class Outgoing:
    """One object for one destination: `kind` sr, capture or fhir; `path` relative to the data folder."""

    destination: str  # "dicom:AE@HOST:PORT" or "fhir:URL"
    object_uid: str  # the SOP Instance UID, or the FHIR Bundle's identifier
    kind: str
    path: str
    study_instance_uid: str


@dataclass(frozen=True)
class Queued:
    id: int
    destination: str
    object_uid: str
    kind: str
    path: str
    attempts: int


class Sending:
    def due(self, now: float, destinations: list[str], blocked: list[str] = (), limit: int = 64) -> list[Queued]:
        """Queued objects for `destinations` whose next attempt has come, oldest first, none for a `blocked` one
        (so that a destination that is down never hides the others' objects behind its own)."""
        wanted = [d for d in destinations if d not in blocked]
        if not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        with self._lock:
            rows = self._db.execute(
                "SELECT id, destination, object_uid, kind, path, attempts FROM outbox WHERE state = 'queued' "
                f"AND next_attempt <= ? AND destination IN ({marks}) ORDER BY id LIMIT ?",
                (now, *wanted, limit)).fetchall()
        return [Queued(*row) for row in rows]

    def sent(self, item_id: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE outbox SET state = 'sent', sent = ?, attempts = attempts + 1, last_error = '' "
                       "WHERE id = ?", (time.time(), item_id))

    def retry(self, item_id: int, next_attempt: float, error: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?",
                       (next_attempt, error, item_id))

    def postpone(self, destination: str, next_attempt: float) -> None:
        """Every queued object of a destination that is down waits for its next try, kept across restarts."""
        with self._transaction() as db:
            db.execute("UPDATE outbox SET next_attempt = max(next_attempt, ?) WHERE destination = ? "
                       "AND state = 'queued'", (next_attempt, destination))

    def failed(self, item_id: int, error: str) -> None:
        """Refused for good by the peer: kept with its message, never tried again by itself."""
        with self._transaction() as db:
            db.execute("UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ? WHERE id = ?",
                       (error, item_id))

    def path_still_needed(self, path: str) -> bool:
        """Whether an object's file is still queued (or failed) for some destination."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM outbox WHERE path = ? AND state != 'sent' LIMIT 1",
                                    (path,)).fetchone() is not None

    def outbox(self) -> list[dict]:
        """Per destination: objects queued, sent and failed, and the last error."""
        with self._lock:
            return self._rows(
                "SELECT destination, sum(state = 'queued') AS queued, sum(state = 'sent') AS sent, "
                "sum(state = 'failed') AS failed, (SELECT last_error FROM outbox o WHERE o.destination = "
                "outbox.destination AND last_error != '' ORDER BY id DESC LIMIT 1) AS last_error, "
                "max(sent) AS last_sent FROM outbox GROUP BY destination ORDER BY destination", ())

    def outbox_items(self) -> list[dict]:
        with self._lock:
            return self._rows("SELECT destination, kind, object_uid, study_instance_uid, state, attempts, queued, "
                              "sent, next_attempt, last_error FROM outbox ORDER BY id", ())


def _enqueue(db: sqlite3.Connection, outgoing) -> None:
    """Queue each object for its destination once: an object acknowledged (or queued) before is left as it is."""
    now = time.time()
    db.executemany(
        "INSERT OR IGNORE INTO outbox (destination, object_uid, kind, path, study_instance_uid, queued, next_attempt) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(o.destination, o.object_uid, o.kind, o.path, o.study_instance_uid, now, now) for o in outgoing])
