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
)
SCHEMA_VERSION = len(MIGRATIONS)


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
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.data / DATABASE}: schema version {version} is newer than this cxr-edge's "
                               f"({SCHEMA_VERSION}); upgrade cxr-edge")
        for number in range(version + 1, SCHEMA_VERSION + 1):  # each migration and its version in one transaction
            with self._lock:
                self._db.executescript(f"BEGIN; {MIGRATIONS[number - 1]}; PRAGMA user_version = {number}; COMMIT;")

    def _transaction(self):
        return _Transaction(self._db, self._lock)

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

    def record_result(self, sop_instance_uid: str, row: dict) -> None:
        """A classified instance's row (classify's `Result.as_row()`), and the instance marked classified, in one
        transaction: a crash leaves both or neither, so a restart classifies it again or not at all."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO results (sop_instance_uid, classified, label, p_normal, p_lung_opacity, "
                "p_viral_pneumonia, p_covid19, refer, reason, error, ood_score) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sop_instance_uid, time.time(), row["label"], row["p_normal"], row["p_lung_opacity"],
                 row["p_viral_pneumonia"], row["p_covid19"], int(row["refer"]), row["reason"], row["error"],
                 row["ood_score"]))
            db.execute("UPDATE instances SET state = 'classified' WHERE sop_instance_uid = ?", (sop_instance_uid,))

    def study_rows(self, study_instance_uid: str) -> list[dict]:
        with self._lock:
            return self._rows(f"{_RESULTS_QUERY} WHERE i.study_instance_uid = ?", (study_instance_uid,))

    def set_study(self, study_instance_uid: str, label: str, refer: bool, final: bool, last_received: float) -> bool:
        """The study's result, as of its image received at `last_received`: False (nothing written) when another
        image has arrived since, so that a late image is never sealed out of a final study."""
        with self._transaction() as db:
            return bool(db.execute("UPDATE studies SET label = ?, refer = ?, final = ? WHERE study_instance_uid = ? "
                                   "AND last_received = ?",
                                   (label, int(refer), int(final), study_instance_uid, last_received)).rowcount)

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

    def finish_stick_run(self, run_id: int, state: str, rows: list[dict] = (), referred: int = 0,
                         errors: int = 0) -> None:
        """`state` finished (with every row) or interrupted (the journal beside the report keeps the rows)."""
        now = time.time()
        with self._transaction() as db:
            db.execute("UPDATE stick_runs SET state = ?, finished = ?, images = ?, referred = ?, errors = ? "
                       "WHERE id = ?", (state, now, len(rows), referred, errors, run_id))
            for row in rows:
                db.execute(
                    "INSERT OR REPLACE INTO stick_results (run_id, path, classified, label, p_normal, p_lung_opacity, "
                    "p_viral_pneumonia, p_covid19, refer, reason, error, ood_score) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, row["path"], now, row["label"], row["p_normal"], row["p_lung_opacity"],
                     row["p_viral_pneumonia"], row["p_covid19"], int(row["refer"]), row["reason"], row["error"],
                     row["ood_score"]))

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
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


_RESULTS_QUERY = (
    "SELECT i.study_instance_uid, i.sop_instance_uid, i.received, i.source, i.path, r.label, r.p_normal, "
    "r.p_lung_opacity, r.p_viral_pneumonia, r.p_covid19, r.refer, r.reason, r.error, r.ood_score "
    "FROM instances i JOIN results r ON r.sop_instance_uid = i.sop_instance_uid")
# a stick's images have no UIDs the node knows (classify reads no header value into a result)
_STICK_QUERY = (
    "SELECT NULL, NULL, r.classified, 'usb:' || s.label, r.path, r.label, r.p_normal, r.p_lung_opacity, "
    "r.p_viral_pneumonia, r.p_covid19, r.refer, r.reason, r.error, r.ood_score "
    "FROM stick_results r JOIN stick_runs s ON s.id = r.run_id")


class _Transaction:
    """`with` block: the lock held, BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, kind, *_) -> None:
        try:
            if kind is None:
                try:
                    self.db.execute("COMMIT")
                    return
                except sqlite3.Error:
                    self.db.execute("ROLLBACK")  # never leave a transaction open for the next writer
                    raise
            self.db.execute("ROLLBACK")
        finally:
            self.lock.release()


def private_folder(path: Path) -> None:
    """Make `path` (and its parents) if absent; the node's own folders are mode 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
