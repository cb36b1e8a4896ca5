"""What the receiver records: each instance received, its study (with what a clinician needs to find the
patient: never logged, never in a URL), and the node's events."""

from __future__ import annotations

import time
from dataclasses import dataclass

@dataclass(frozen=True)
class Instance:
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    source: str
    path: str  # relative to the data folder
    received: float
    id: int = 0  # the database's number for it (the screen's image links, its pictures' file names)


@dataclass(frozen=True)
class StudyHeader:
    """What the node keeps of a study's header to find the patient: never logged, never in a URL."""

    patient_id: str = ""
    patient_name: str = ""
    accession_number: str = ""
    study_date: str = ""
    study_description: str = ""
    patient_sex: str = ""  # M, F, O or empty, as the header gives it
    patient_age: str = ""  # the header's nnnD/W/M/Y
    patient_birth_date: str = ""  # YYYYMMDD


class Receiving:
    def has_instance(self, sop_instance_uid: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM instances WHERE sop_instance_uid = ?",
                                    (sop_instance_uid,)).fetchone() is not None

    def add_instance(self, instance: Instance, header: StudyHeader) -> bool:
        """Record a received instance and its study; False when the SOP Instance UID was recorded already."""
        with self._transaction() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO instances (sop_instance_uid, sop_class_uid, study_instance_uid, "
                "series_instance_uid, source, path, received, patient_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (instance.sop_instance_uid, instance.sop_class_uid, instance.study_instance_uid,
                 instance.series_instance_uid, instance.source, instance.path, instance.received,
                 header.patient_id)).rowcount
            if added:
                db.execute(
                    "INSERT INTO studies (study_instance_uid, patient_id, patient_name, accession_number, study_date, "
                    "study_description, patient_sex, patient_age, patient_birth_date, first_received, last_received) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (study_instance_uid) DO UPDATE SET last_received = excluded.last_received, "
                    "final = 0",
                    (instance.study_instance_uid, header.patient_id, header.patient_name, header.accession_number,
                     header.study_date, header.study_description, header.patient_sex, header.patient_age,
                     header.patient_birth_date, instance.received, instance.received))
            return bool(added)

    def event(self, kind: str, detail: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO events (time, kind, detail) VALUES (?, ?, ?)", (time.time(), kind, detail))
