"""What the classifying thread reads and records: instances waiting, each result with what it queues, each
study's result and leading image; and every result as `cxr-edge results` lists them."""

from __future__ import annotations

import sqlite3
import time

from cxr_edge.node.state.connection import _insert
from cxr_edge.node.state.receiving import Instance
from cxr_edge.node.state.sending import Outgoing, _enqueue
from cxr_edge.run.result import RECORD_COLUMNS, Result


class Classifying:
    def instance_results(self) -> list[dict]:
        """Every instance with its label and when it was classified (None for both while it waits)."""
        return self.query("SELECT i.sop_instance_uid, r.label, r.classified FROM instances i LEFT JOIN results r "
                          "ON r.sop_instance_uid = i.sop_instance_uid ORDER BY i.id")

    def queue_length(self) -> int:
        """Instances received and not yet classified."""
        return self.query("SELECT count(*) AS n FROM instances WHERE state = 'received'")[0]["n"]

    def pending(self, limit: int = 8) -> list[Instance]:
        with self._lock:
            rows = self._db.execute(
                "SELECT sop_instance_uid, sop_class_uid, study_instance_uid, series_instance_uid, source, path, "
                "received, id FROM instances WHERE state = 'received' ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [Instance(*row) for row in rows]

    def record_result(self, sop_instance_uid: str, result: Result, outgoing: tuple[Outgoing, ...] = (),
                      owed: bool = False, bundle: str = "") -> None:
        """A classified instance's result, the objects to send about it, and the instance marked classified, in
        one transaction: a crash leaves all or none, so a restart classifies it again or not at all, and never
        classifies it without queueing its results. `owed`: its objects could not be made (owed_results)."""
        with self._transaction() as db:
            _enqueue(db, outgoing)
            _insert(db, "INSERT OR REPLACE INTO results", {"sop_instance_uid": sop_instance_uid,
                                                           "classified": time.time(), **result.as_record(),
                                                           "records_owed": int(owed), "bundle": bundle})
            db.execute("UPDATE instances SET state = 'classified' WHERE sop_instance_uid = ?", (sop_instance_uid,))

    def owed_results(self, limit: int = 20, bundle: str | None = None) -> list[dict]:
        """Classified images whose objects to send are owed: the instance (id, UIDs, path) and its stored result;
        with `bundle`, only those that bundle made (or made before results named theirs): another bundle's (before a
        promotion) cannot be recorded truthfully by this one, whose name the objects would carry."""
        where, args = ("AND r.bundle IN ('', ?) ", (bundle, limit)) if bundle else ("", (limit,))
        return self.query(f"SELECT i.id, i.sop_instance_uid, i.study_instance_uid, i.path, {_RESULT_COLUMNS} FROM "
                          "results r JOIN instances i ON i.sop_instance_uid = r.sop_instance_uid WHERE "
                          f"r.records_owed = 1 {where}ORDER BY i.id LIMIT ?", args)

    def owed_studies(self) -> list[str]:
        """Final studies whose FHIR Bundle is owed."""
        return [row["study_instance_uid"] for row in self.query(
            "SELECT study_instance_uid FROM studies WHERE records_owed = 1 AND final = 1 ORDER BY id")]

    def settle_owed(self, outgoing: tuple[Outgoing, ...], sop_instance_uid: str | None = None,
                    study_instance_uid: str | None = None) -> None:
        """The owed objects of an image (or a study) queued, and it no longer owes them, in one transaction."""
        with self._transaction() as db:
            _enqueue(db, outgoing)
            if sop_instance_uid is not None:
                db.execute("UPDATE results SET records_owed = 0 WHERE sop_instance_uid = ?", (sop_instance_uid,))
            if study_instance_uid is not None:
                db.execute("UPDATE studies SET records_owed = 0 WHERE study_instance_uid = ?", (study_instance_uid,))

    def study_images(self, study_instance_uid: str) -> list[tuple[str, Result]]:
        """(SOP Instance UID, result) of each classified image of the study, in the order received."""
        with self._lock:
            return _study_images(self._db, study_instance_uid)

    def set_study(self, study_instance_uid: str, lead: str | None, label: str, refer: bool, final: bool,
                  last_received: float, outgoing: tuple[Outgoing, ...] = (), p_abnormal: float | None = None,
                  band: str = "", owed: bool = False) -> bool:
        """The study's result (that of its leading image, `lead`), as of its image received at `last_received`, and
        the objects to send about it: False (nothing written, nothing queued) when another image has arrived since,
        so that a late image is never sealed out of a final study."""
        with self._transaction() as db:
            changed = bool(db.execute("UPDATE studies SET lead_sop_instance_uid = ?, label = ?, refer = ?, final = ?, "
                                      "p_abnormal = ?, band = ?, records_owed = ? WHERE study_instance_uid = ? AND "
                                      "last_received = ?", (lead, label, int(refer), int(final), p_abnormal, band,
                                                            int(owed), study_instance_uid, last_received)).rowcount)
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

    def unsettled_studies(self) -> list[tuple[str, float, int]]:
        """(study UID, last received, instances not yet classified) of every study not yet final."""
        with self._lock:
            return self._db.execute(
                "SELECT s.study_instance_uid, s.last_received, "
                "(SELECT count(*) FROM instances i WHERE i.study_instance_uid = s.study_instance_uid "
                "AND i.state = 'received') FROM studies s WHERE s.final = 0").fetchall()

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


# a stored result's columns (cxr_edge.run.result.RECORD_COLUMNS) as a query of `results r` names them
_RESULT_COLUMNS = ", ".join(f"r.{column}" for column in RECORD_COLUMNS)
_RESULTS_QUERY = (
    f"SELECT i.study_instance_uid, i.sop_instance_uid, i.received, i.source, s.accession_number, i.path, "
    f"{_RESULT_COLUMNS} FROM instances i JOIN results r ON r.sop_instance_uid = i.sop_instance_uid "
    "LEFT JOIN studies s ON s.study_instance_uid = i.study_instance_uid")
# a stick's images have no UIDs or accession the node knows (classify reads no header value into a result)
_STICK_QUERY = (
    f"SELECT NULL, NULL, r.classified, 'usb:' || s.label, NULL, r.path, {_RESULT_COLUMNS} "
    "FROM stick_results r JOIN stick_runs s ON s.id = r.run_id")


# An image whose header names another patient than its study's (the first image's): flagged, never in its result.
OTHER_PATIENT = "(i.patient_id IS NOT NULL AND i.patient_id != s.patient_id)"


def _study_images(db: sqlite3.Connection, study_instance_uid: str,
                  patients_known: bool = True) -> list[tuple[str, Result]]:
    """The study's classified images, but for those of another patient (OTHER_PATIENT): what its result is made
    from. Without `patients_known` (the migrations before version 8, which kept no image's own ID), every one."""
    others = f"AND NOT {OTHER_PATIENT}" if patients_known else ""
    rows = db.execute(f"SELECT i.sop_instance_uid, i.path, {_RESULT_COLUMNS} FROM instances i JOIN results r "
                      "ON r.sop_instance_uid = i.sop_instance_uid JOIN studies s ON s.study_instance_uid = "
                      f"i.study_instance_uid WHERE i.study_instance_uid = ? {others} ORDER BY i.id",
                      (study_instance_uid,)).fetchall()
    names = ("sop_instance_uid", "path", *RECORD_COLUMNS)
    return [(row[0], Result.from_record(row[1], dict(zip(names, row)))) for row in rows]
