"""The schema, as the migrations that make it: each takes the database from the version before it to its own
number (1-based), SQL first, then its Python step if it has one, in one transaction. Never edit one that has
shipped: add the next."""

from __future__ import annotations

import sqlite3

from cxr_edge.node.studies import lead_image
from cxr_edge.reasons import from_text, to_json

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
    # 6: each study's triage band (cxr_edge.reports.triage: that of its leading image), the patient's sex, age and
    # birth date as the header gives them, and reviews per image (a study's frontal and lateral views may differ);
    # a review of version 5 or before, made of the study, is the leading image's (what the reader was shown); the
    # screen's audit trail (who viewed, reviewed or printed which study, when: append-only).
    """
    ALTER TABLE studies ADD COLUMN band TEXT NOT NULL DEFAULT '';
    ALTER TABLE studies ADD COLUMN patient_sex TEXT NOT NULL DEFAULT '';
    ALTER TABLE studies ADD COLUMN patient_age TEXT NOT NULL DEFAULT '';
    ALTER TABLE studies ADD COLUMN patient_birth_date TEXT NOT NULL DEFAULT '';
    ALTER TABLE reviews ADD COLUMN sop_instance_uid TEXT REFERENCES instances (sop_instance_uid);
    CREATE INDEX reviews_image ON reviews (sop_instance_uid, id);
    UPDATE reviews SET sop_instance_uid = (SELECT s.lead_sop_instance_uid FROM studies s
        WHERE s.study_instance_uid = reviews.study_instance_uid) WHERE kind = 'review';
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        study_instance_uid TEXT,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    # 7: each user's language for the screen (cxr_edge.language); NULL: the box's, [web] language.
    """
    ALTER TABLE users ADD COLUMN language TEXT;
    """,
    # 8: each image's own Patient ID as its header gives it (NULL: received before, unknown): an image of another
    # patient than its study's is flagged and left out of the study's result, never merged into it silently.
    """
    ALTER TABLE instances ADD COLUMN patient_id TEXT;
    """,
    # 9: API tokens with a name (listed and revoked one by one) and an expiry; those made before get their name from
    # their creation time and expire 90 days after it.
    """
    ALTER TABLE tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN expires REAL NOT NULL DEFAULT 0;
    UPDATE tokens SET name = 'token-' || strftime('%Y%m%d%H%M%S', created, 'unixepoch'),
        expires = created + 90 * 86400;
    CREATE UNIQUE INDEX tokens_name ON tokens (user, name);
    """,
    # 10: a result (or a final study) whose records to send (SR, heatmap, FHIR Bundle) could not be made when it was
    # recorded (a full disk): owed, and made by the classifying thread's sweep once they can be.
    """
    ALTER TABLE results ADD COLUMN records_owed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE studies ADD COLUMN records_owed INTEGER NOT NULL DEFAULT 0;
    """,
    # 11: each result names the bundle that made it (its manifest's sha256; '' for those made before); a candidate
    # bundle's results (shadow mode: cxr_edge.node.candidate) in a table of their own, one per image and bundle, so
    # that nothing that shows or sends results can take one for the clinician's.
    """
    ALTER TABLE results ADD COLUMN bundle TEXT NOT NULL DEFAULT '';
    CREATE TABLE shadow_results (
        sop_instance_uid TEXT NOT NULL REFERENCES instances (sop_instance_uid),
        bundle TEXT NOT NULL,
        classified REAL NOT NULL,
        label TEXT NOT NULL,
        p_normal REAL, p_lung_opacity REAL, p_viral_pneumonia REAL, p_covid19 REAL,
        refer INTEGER NOT NULL,
        reasons TEXT NOT NULL,
        error TEXT NOT NULL,
        ood_score REAL,
        PRIMARY KEY (sop_instance_uid, bundle)
    );
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
    from cxr_edge.node.state.classifying import _study_images  # the same reading the worker uses

    for (study,) in db.execute("SELECT study_instance_uid FROM studies").fetchall():
        images = _study_images(db, study, patients_known=False)
        if images:
            db.execute("UPDATE studies SET lead_sop_instance_uid = ? WHERE study_instance_uid = ?",
                       (lead_image(images)[0], study))


def _bands(db: sqlite3.Connection) -> None:
    """Version 6's data step: each study's band, that of its stored leading image."""
    from cxr_edge.node.state.classifying import _study_images
    from cxr_edge.reports.triage import band

    for study, lead in db.execute("SELECT study_instance_uid, lead_sop_instance_uid FROM studies").fetchall():
        results = dict(_study_images(db, study, patients_known=False))
        if lead in results:
            db.execute("UPDATE studies SET band = ? WHERE study_instance_uid = ?", (band(results[lead]), study))


# Python steps of a migration, by the version they complete (run in its transaction, after its SQL).
MIGRATION_STEPS = {5: _reasons_as_codes, 6: _bands}
