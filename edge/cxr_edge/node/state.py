"""The node's state: one SQLite database in the data folder (the standard library's sqlite3, WAL journal,
synchronous=FULL so that a committed row survives a power cut), with a schema version and migrations.

It keeps what a clinician needs to find a patient (patient ID and name, accession number, study date and
description), because it serves the clinic; the database and the data folder are the service user's alone
(modes 0600 and 0700). Nothing here logs.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cxr_edge.node.studies import lead_image
from cxr_edge.reasons import from_text, to_json
from cxr_edge.run.result import RECORD_COLUMNS, Result

DATABASE = "node.sqlite3"
# Each entry takes the schema from the version before it to its own number (1-based). Never edit one that has
# shipped: add the next.
MIGRATIONS = (
    """
    CREATE TABLE instances (
        id INTEGER PRIMARY KEY,
        sop_instance_uid TEXT NOT NULL UNIQUE,
        sop_class_uid TEXT NOT NULL,
        study_instance_uid TEXT NOT NULL,
        series_instance_uid TEXT NOT NULL,
        source TEXT NOT NULL,
        path TEXT NOT NULL,
        received REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'received'
    );
    CREATE INDEX instances_pending ON instances (state, id);
    CREATE TABLE studies (
        study_instance_uid TEXT PRIMARY KEY,
        patient_id TEXT NOT NULL DEFAULT '',
        patient_name TEXT NOT NULL DEFAULT '',
        accession_number TEXT NOT NULL DEFAULT '',
        study_date TEXT NOT NULL DEFAULT '',
        study_description TEXT NOT NULL DEFAULT '',
        first_received REAL NOT NULL,
        last_received REAL NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        refer INTEGER NOT NULL DEFAULT 0,
        final INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE results (
        sop_instance_uid TEXT PRIMARY KEY REFERENCES instances (sop_instance_uid),
        classified REAL NOT NULL,
        label TEXT NOT NULL,
        p_normal REAL, p_lung_opacity REAL, p_viral_pneumonia REAL, p_covid19 REAL,
        refer INTEGER NOT NULL,
        reason TEXT NOT NULL,
        error TEXT NOT NULL,
        ood_score REAL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE stick_runs (
        id INTEGER PRIMARY KEY,
        label TEXT NOT NULL,
        mount TEXT NOT NULL,
        report TEXT NOT NULL UNIQUE,
        started REAL NOT NULL,
        finished REAL,
        state TEXT NOT NULL,
        images INTEGER NOT NULL DEFAULT 0,
        referred INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE stick_results (
        run_id INTEGER NOT NULL REFERENCES stick_runs (id),
        path TEXT NOT NULL,
        classified REAL NOT NULL,
        label TEXT NOT NULL,
        p_normal REAL, p_lung_opacity REAL, p_viral_pneumonia REAL, p_covid19 REAL,
        refer INTEGER NOT NULL,
        reason TEXT NOT NULL,
        error TEXT NOT NULL,
        ood_score REAL,
        PRIMARY KEY (run_id, path)
    );
    """,
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        destination TEXT NOT NULL,
        object_uid TEXT NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        study_instance_uid TEXT NOT NULL,
        queued REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        sent REAL,
        last_error TEXT NOT NULL DEFAULT '',
        UNIQUE (destination, object_uid)
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt);
    """,
    """
    CREATE INDEX instances_study ON instances (study_instance_uid);
    ALTER TABLE studies ADD COLUMN p_abnormal REAL;
    UPDATE studies SET p_abnormal = (SELECT max(1 - r.p_normal) FROM instances i JOIN results r
        ON r.sop_instance_uid = i.sop_instance_uid WHERE i.study_instance_uid = studies.study_instance_uid);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        created REAL NOT NULL
    );
    CREATE TABLE sessions (
        hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE login_failures (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        user TEXT NOT NULL,
        address TEXT NOT NULL
    );
    CREATE TABLE reviews (
        id INTEGER PRIMARY KEY,
        study_instance_uid TEXT NOT NULL REFERENCES studies (study_instance_uid),
        user TEXT NOT NULL,
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        agree INTEGER,
        finding TEXT NOT NULL DEFAULT '',
        confirmation TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX reviews_study ON reviews (study_instance_uid, id);
    """,
    # 5: reasons stored as codes (cxr_edge.reasons; the words of version 4 converted below), studies keyed by an
    # INTEGER PRIMARY KEY (their old rowid: a link made before still leads to the same study, and VACUUM can no
    # longer renumber them), and the image that leads each study stored, decided once by the worker.
    """
    ALTER TABLE results ADD COLUMN reasons TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE stick_results ADD COLUMN reasons TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE studies_5 (
        id INTEGER PRIMARY KEY,
        study_instance_uid TEXT NOT NULL UNIQUE,
        patient_id TEXT NOT NULL DEFAULT '',
        patient_name TEXT NOT NULL DEFAULT '',
        accession_number TEXT NOT NULL DEFAULT '',
        study_date TEXT NOT NULL DEFAULT '',
        study_description TEXT NOT NULL DEFAULT '',
        first_received REAL NOT NULL,
        last_received REAL NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        refer INTEGER NOT NULL DEFAULT 0,
        final INTEGER NOT NULL DEFAULT 0,
        p_abnormal REAL,
        lead_sop_instance_uid TEXT REFERENCES instances (sop_instance_uid)
    );
    INSERT INTO studies_5 (id, study_instance_uid, patient_id, patient_name, accession_number, study_date,
        study_description, first_received, last_received, label, refer, final, p_abnormal)
        SELECT rowid, study_instance_uid, patient_id, patient_name, accession_number, study_date, study_description,
        first_received, last_received, label, refer, final, p_abnormal FROM studies;
    DROP TABLE studies;
    ALTER TABLE studies_5 RENAME TO studies;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _reasons_as_codes(db: sqlite3.Connection) -> None:
    """Version 5's data step: each stored reason text as codes (a sentence no code matches is kept as `other`
    with its words), each study's leading image, then the text columns dropped."""
    for table, key in (("results", "sop_instance_uid"), ("stick_results", "rowid")):
        rows = db.execute(f"SELECT {key}, reason FROM {table}").fetchall()
        db.executemany(f"UPDATE {table} SET reasons = ? WHERE {key} = ?",
                       [(to_json(from_text(reason)), row_key) for row_key, reason in rows])
        db.execute(f"ALTER TABLE {table} DROP COLUMN reason")
    for (study,) in db.execute("SELECT study_instance_uid FROM studies").fetchall():
        images = _study_images(db, study)
        if images:
            db.execute("UPDATE studies SET lead_sop_instance_uid = ? WHERE study_instance_uid = ?",
                       (lead_image(images)[0], study))


# Python steps of a migration, by the version they complete (run in its transaction, after its SQL).
MIGRATION_STEPS = {5: _reasons_as_codes}




@dataclass(frozen=True)
class Instance:
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    source: str
    path: str  # relative to the data folder
    received: float


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


@dataclass(frozen=True)
class StudyHeader:
    """What the node keeps of a study's header to find the patient: never logged, never in a URL."""

    patient_id: str = ""
    patient_name: str = ""
    accession_number: str = ""
    study_date: str = ""
    study_description: str = ""


class State:
    """The database, shared by the receiver's association threads and the worker: one connection behind a
    lock (SQLite serialises writers anyway), every write its own transaction."""

    def __init__(self, data: Path):
        self.data = data
        private_folder(data)
        path = data / DATABASE
        fresh = not path.exists()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if fresh:
            os.chmod(path, 0o600)
        self._lock = threading.RLock()  # re-entrant: a query inside a transaction runs in it, never deadlocks
        self._depth = 0  # transactions open on this connection: nested ones are savepoints
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()
        # after migrating (a table rebuild must not cascade); SQLite leaves it off on every new connection
        self._db.execute("PRAGMA foreign_keys = ON")

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.data / DATABASE}: schema version {version} is newer than this cxr-edge's "
                               f"({SCHEMA_VERSION}); upgrade cxr-edge")
        for number in range(version + 1, SCHEMA_VERSION + 1):  # each migration and its version in one transaction
            with self._transaction() as db:
                for statement in _statements(MIGRATIONS[number - 1]):  # executescript would COMMIT first
                    db.execute(statement)
                if number in MIGRATION_STEPS:
                    MIGRATION_STEPS[number](db)
                db.execute(f"PRAGMA user_version = {number}")

    def _transaction(self):
        return _Transaction(self)

    def transaction(self):
        """`with state.transaction() as db:` one write transaction, for the node's other parts (the web screen)."""
        return self._transaction()

    def query(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._lock:
            return self._rows(sql, args)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # the receiver's side
    def has_instance(self, sop_instance_uid: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM instances WHERE sop_instance_uid = ?",
                                    (sop_instance_uid,)).fetchone() is not None

    def add_instance(self, instance: Instance, header: StudyHeader) -> bool:
        """Record a received instance and its study; False when the SOP Instance UID was recorded already."""
        with self._transaction() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO instances (sop_instance_uid, sop_class_uid, study_instance_uid, "
                "series_instance_uid, source, path, received) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (instance.sop_instance_uid, instance.sop_class_uid, instance.study_instance_uid,
                 instance.series_instance_uid, instance.source, instance.path, instance.received)).rowcount
            if added:
                db.execute(
                    "INSERT INTO studies (study_instance_uid, patient_id, patient_name, accession_number, study_date, "
                    "study_description, first_received, last_received) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (study_instance_uid) DO UPDATE SET last_received = excluded.last_received, "
                    "final = 0",
                    (instance.study_instance_uid, header.patient_id, header.patient_name, header.accession_number,
                     header.study_date, header.study_description, instance.received, instance.received))
            return bool(added)

    def event(self, kind: str, detail: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO events (time, kind, detail) VALUES (?, ?, ?)", (time.time(), kind, detail))

    # the worker's side
    def pending(self, limit: int = 8) -> list[Instance]:
        with self._lock:
            rows = self._db.execute(
                "SELECT sop_instance_uid, sop_class_uid, study_instance_uid, series_instance_uid, source, path, "
                "received FROM instances WHERE state = 'received' ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [Instance(*row) for row in rows]

    def record_result(self, sop_instance_uid: str, result: Result, outgoing: tuple[Outgoing, ...] = ()) -> None:
        """A classified instance's result, the objects to send about it, and the instance marked classified, in
        one transaction: a crash leaves all or none, so a restart classifies it again or not at all, and never
        classifies it without queueing its results."""
        with self._transaction() as db:
            _enqueue(db, outgoing)
            _insert(db, "INSERT OR REPLACE INTO results", {"sop_instance_uid": sop_instance_uid,
                                                           "classified": time.time(), **result.as_record()})
            db.execute("UPDATE instances SET state = 'classified' WHERE sop_instance_uid = ?", (sop_instance_uid,))

    def study_images(self, study_instance_uid: str) -> list[tuple[str, Result]]:
        """(SOP Instance UID, result) of each classified image of the study, in the order received."""
        with self._lock:
            return _study_images(self._db, study_instance_uid)

    def set_study(self, study_instance_uid: str, lead: str | None, label: str, refer: bool, final: bool,
                  last_received: float, outgoing: tuple[Outgoing, ...] = (), p_abnormal: float | None = None) -> bool:
        """The study's result (that of its leading image, `lead`), as of its image received at `last_received`, and
        the objects to send about it: False (nothing written, nothing queued) when another image has arrived since,
        so that a late image is never sealed out of a final study."""
        with self._transaction() as db:
            changed = bool(db.execute("UPDATE studies SET lead_sop_instance_uid = ?, label = ?, refer = ?, final = ?, "
                                      "p_abnormal = ? WHERE study_instance_uid = ? AND last_received = ?",
                                      (lead, label, int(refer), int(final), p_abnormal, study_instance_uid,
                                       last_received)).rowcount)
            if changed:
                _enqueue(db, outgoing)
            return changed

    def study_results(self, study_instance_uid: str) -> list[tuple[dict, Result]]:
        """The study's classified images with what FHIR needs: (SOP Instance UID, time classified, the study's
        header) and the result."""
        with self._lock:
            rows = self._rows(
                f"SELECT i.sop_instance_uid, i.path, r.classified, {_RESULT_COLUMNS}, s.patient_id, s.study_date "
                "FROM instances i JOIN results r ON r.sop_instance_uid = i.sop_instance_uid "
                "JOIN studies s ON s.study_instance_uid = i.study_instance_uid WHERE i.study_instance_uid = ? "
                "ORDER BY i.id", (study_instance_uid,))
        return [(row, Result.from_record(row["path"], row)) for row in rows]

    # the sender's side
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

    def unsettled_studies(self) -> list[tuple[str, float, int]]:
        """(study UID, last received, instances not yet classified) of every study not yet final."""
        with self._lock:
            return self._db.execute(
                "SELECT s.study_instance_uid, s.last_received, "
                "(SELECT count(*) FROM instances i WHERE i.study_instance_uid = s.study_instance_uid "
                "AND i.state = 'received') FROM studies s WHERE s.final = 0").fetchall()

    # the stick watcher's side
    def start_stick_run(self, label: str, mount: str, report: str) -> int:
        """A stick run, new or resumed (the same report: the same stick on the same day)."""
        with self._transaction() as db:
            db.execute("INSERT INTO stick_runs (label, mount, report, started, state) VALUES (?, ?, ?, ?, 'running') "
                       "ON CONFLICT (report) DO UPDATE SET state = 'running', mount = excluded.mount, finished = NULL",
                       (label, mount, report, time.time()))
            return db.execute("SELECT id FROM stick_runs WHERE report = ?", (report,)).fetchone()[0]

    def finish_stick_run(self, run_id: int, state: str, results: list[Result] = (), referred: int = 0,
                         errors: int = 0) -> None:
        """`state` finished (with every row) or interrupted (the journal beside the report keeps the rows)."""
        now = time.time()
        with self._transaction() as db:
            db.execute("UPDATE stick_runs SET state = ?, finished = ?, images = ?, referred = ?, errors = ? "
                       "WHERE id = ?", (state, now, len(results), referred, errors, run_id))
            for result in results:
                _insert(db, "INSERT OR REPLACE INTO stick_results", {
                    "run_id": run_id, "path": result.as_row()["path"], "classified": now, **result.as_record()})

    def stick_runs(self) -> list[dict]:
        with self._lock:
            return self._rows("SELECT * FROM stick_runs ORDER BY id", ())

    # for `cxr-edge results`
    def results(self, since: float | None = None) -> list[dict]:
        """One row per classified image, from the X-ray unit or a stick, newest first."""
        where, args = ("WHERE received >= ?", (since,)) if since is not None else ("", ())
        with self._lock:
            return self._rows(f"SELECT * FROM ({_RESULTS_QUERY} UNION ALL {_STICK_QUERY}) {where} "
                              "ORDER BY received DESC, sop_instance_uid DESC, path DESC", args)

    def study(self, study_instance_uid: str) -> dict | None:
        with self._lock:
            cursor = self._db.execute("SELECT * FROM studies WHERE study_instance_uid = ?", (study_instance_uid,))
            row = cursor.fetchone()
            return dict(zip([c[0] for c in cursor.description], row)) if row else None

    def _rows(self, query: str, args: tuple) -> list[dict]:
        cursor = self._db.execute(query, args)
        names = [c[0] for c in cursor.description or ()]  # none for a statement that returns no rows
        return [dict(zip(names, row)) for row in cursor.fetchall()]


# a stored result's columns (cxr_edge.run.result.RECORD_COLUMNS) as a query of `results r` names them
_RESULT_COLUMNS = ", ".join(f"r.{column}" for column in RECORD_COLUMNS)
_RESULTS_QUERY = (
    f"SELECT i.study_instance_uid, i.sop_instance_uid, i.received, i.source, i.path, {_RESULT_COLUMNS} "
    "FROM instances i JOIN results r ON r.sop_instance_uid = i.sop_instance_uid")
# a stick's images have no UIDs the node knows (classify reads no header value into a result)
_STICK_QUERY = (
    f"SELECT NULL, NULL, r.classified, 'usb:' || s.label, r.path, {_RESULT_COLUMNS} "
    "FROM stick_results r JOIN stick_runs s ON s.id = r.run_id")


def _study_images(db: sqlite3.Connection, study_instance_uid: str) -> list[tuple[str, Result]]:
    rows = db.execute(f"SELECT i.sop_instance_uid, i.path, {_RESULT_COLUMNS} FROM instances i JOIN results r "
                      "ON r.sop_instance_uid = i.sop_instance_uid WHERE i.study_instance_uid = ? ORDER BY i.id",
                      (study_instance_uid,)).fetchall()
    names = ("sop_instance_uid", "path", *RECORD_COLUMNS)
    return [(row[0], Result.from_record(row[1], dict(zip(names, row)))) for row in rows]


def _statements(script: str) -> list[str]:
    """An SQL script's statements, one by one."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s.strip(" ;\n")]


def _insert(db: sqlite3.Connection, verb: str, values: dict) -> None:
    """`verb` (INSERT ..., INSERT OR REPLACE INTO table) with the values' keys as the columns."""
    db.execute(f"{verb} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", tuple(values.values()))


def _enqueue(db: sqlite3.Connection, outgoing) -> None:
    """Queue each object for its destination once: an object acknowledged (or queued) before is left as it is."""
    now = time.time()
    db.executemany(
        "INSERT OR IGNORE INTO outbox (destination, object_uid, kind, path, study_instance_uid, queued, next_attempt) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(o.destination, o.object_uid, o.kind, o.path, o.study_instance_uid, now, now) for o in outgoing])


class _Transaction:
    """`with` block: the lock held, BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception). Inside another
    transaction of the same thread it is a savepoint: its work is undone alone on an exception, and kept only if
    the outer transaction commits."""

    def __init__(self, state: State):
        self.state, self.db = state, state._db

    def __enter__(self) -> sqlite3.Connection:
        self.state._lock.acquire()
        try:
            self.savepoint = f"nested_{self.state._depth}" if self.state._depth else None
            self.db.execute(f"SAVEPOINT {self.savepoint}" if self.savepoint else "BEGIN IMMEDIATE")
        except BaseException:
            self.state._lock.release()
            raise
        self.state._depth += 1
        return self.db

    def __exit__(self, kind, *_) -> None:
        self.state._depth -= 1
        try:
            if self.savepoint:
                if kind is not None:
                    self.db.execute(f"ROLLBACK TO {self.savepoint}")
                self.db.execute(f"RELEASE {self.savepoint}")
            elif kind is None:
                try:
                    self.db.execute("COMMIT")
                    return
                except sqlite3.Error:
                    self.db.execute("ROLLBACK")  # never leave a transaction open for the next writer
                    raise
            else:
                self.db.execute("ROLLBACK")
        finally:
            self.state._lock.release()


def write_durably(path: Path, data: bytes) -> None:
    """`data` at `path` as a whole or not at all, and on disk (not only in the page cache) before returning: the
    file, its folder's entry for it, and a new folder's entry in its parent."""
    from cxr_edge.atomic import sync_folder, write_atomic

    new_folder = not path.parent.exists()
    private_folder(path.parent)
    if new_folder:
        sync_folder(path.parent.parent)
    write_atomic(path, data, mode=0o600)
    sync_folder(path.parent)


def private_folder(path: Path) -> None:
    """Make `path` (and its parents) if absent; the node's own folders are mode 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
