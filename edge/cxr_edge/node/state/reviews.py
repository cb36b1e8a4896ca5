"""What the clinician's screen reads (the worklist, a study, an image, the weeks of monitoring) and the reviews it
appends: entries are never changed or deleted, the latest is the clinic's current word."""

from __future__ import annotations

import time

from cxr_edge.node.state.classifying import _RESULT_COLUMNS, OTHER_PATIENT

# The worklist's filters and order. The order follows each study's stored band (cxr_edge.reports.triage, that of its
# leading image as the worker decided it): likely abnormal by probability, the AI cannot judge, likely normal,
# could not be read; newest first within each.
_REVIEWED = "EXISTS (SELECT 1 FROM reviews v WHERE v.study_instance_uid = s.study_instance_uid AND v.kind = 'review')"
WORKLIST_FILTERS = {"to_review": f"NOT {_REVIEWED}", "referred": "s.refer = 1", "reviewed": _REVIEWED, "all": "1"}
_URGENCY = ("CASE s.band WHEN 'abnormal' THEN 0 WHEN 'cannot_judge' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END, "
            "coalesce(s.p_abnormal, 0) DESC, s.first_received DESC")
_LATEST = ("(SELECT {column} FROM reviews v WHERE v.study_instance_uid = s.study_instance_uid AND v.kind = '{kind}' "
           "ORDER BY v.id DESC LIMIT 1)")
_LATEST_OF_IMAGE = ("(SELECT {column} FROM reviews v WHERE v.sop_instance_uid = i.sop_instance_uid AND "
                    "v.kind = '{kind}' ORDER BY v.id DESC LIMIT 1)")


class Reviews:
    def append_review(self, study_uid: str, user: str, kind: str, agree: bool | None, finding: str,
                      confirmation: str, note: str, at: float | None = None, image: str | None = None) -> None:
        """A review of one image (`image`, its SOP Instance UID) or a study's confirmatory result, recorded now (or
        `at`, for a benchmark's history)."""
        self.append_reviews(study_uid, user, [(image, kind, agree, finding, confirmation, note)], at)

    def append_reviews(self, study_uid: str, user: str, entries: list[tuple], at: float | None = None) -> None:
        """Several at once, in one transaction (a reader's findings on each image of a study): each entry
        (image SOP Instance UID or None, kind, agree, finding, confirmation, note)."""
        now = time.time() if at is None else at
        with self._transaction() as db:
            db.executemany("INSERT INTO reviews (study_instance_uid, sop_instance_uid, user, time, kind, agree, "
                           "finding, confirmation, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(study_uid, image, user, now, kind, None if agree is None else int(agree), finding,
                             confirmation, note) for image, kind, agree, finding, confirmation, note in entries])

    def reviewed_rows(self) -> list[dict]:
        """One row per reviewed image, with its stored result, its own latest review (the reader's finding on that
        image) and its study's latest confirmatory result."""
        latest = {name: (_LATEST_OF_IMAGE if kind == "review" else _LATEST).format(column=column, kind=kind)
                  for name, column, kind in (
            ("finding", "v.finding", "review"), ("agree", "v.agree", "review"), ("reviewer", "v.user", "review"),
            ("reviewed", "v.time", "review"), ("confirmation", "v.confirmation", "confirmation"),
            ("confirmed", "v.time", "confirmation"))}
        columns = ", ".join(f"{sql} AS {name}" for name, sql in latest.items())
        return self.query(
            f"SELECT s.id AS study_id, i.id AS image_id, i.received, i.path, i.sop_instance_uid, "
            f"s.study_instance_uid, s.patient_id, s.patient_name, s.accession_number, {_RESULT_COLUMNS}, "
            f"{columns} FROM studies s JOIN instances i ON i.study_instance_uid = s.study_instance_uid JOIN results r "
            f"ON r.sop_instance_uid = i.sop_instance_uid WHERE EXISTS (SELECT 1 FROM reviews v WHERE "
            f"v.sop_instance_uid = i.sop_instance_uid AND v.kind = 'review') ORDER BY s.id, i.id")

    def worklist(self, which: str, page: int, size: int, day_start: float | None = None,
                 search: str = "") -> tuple[list[dict], int]:
        """One page of studies under a filter (WORKLIST_FILTERS), most urgent first, and how many it holds; with
        `day_start`, those first received that day; with `search`, those whose patient ID or name holds it."""
        where, args = WORKLIST_FILTERS[which], []
        if day_start is not None:
            where += " AND s.first_received >= ? AND s.first_received < ?"
            args += [day_start, day_start + 86400]
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where += " AND (s.patient_id LIKE ? ESCAPE '\\' OR s.patient_name LIKE ? ESCAPE '\\')"
            args += [pattern, pattern]
        total = self.query(f"SELECT count(*) AS n FROM studies s WHERE {where}", tuple(args))[0]["n"]
        rows = self.query(
            "SELECT p.*, "
            # the leading image, as the worker stored it: its thumbnail and its reasons, side by side
            "(SELECT r.reasons FROM results r WHERE r.sop_instance_uid = p.lead_sop_instance_uid) AS reasons, "
            "(SELECT r.p_normal FROM results r WHERE r.sop_instance_uid = p.lead_sop_instance_uid) AS lead_p_normal, "
            "(SELECT i.id FROM instances i WHERE i.sop_instance_uid = p.lead_sop_instance_uid) AS thumb, "
            "(SELECT count(*) FROM instances i WHERE i.study_instance_uid = p.study_instance_uid) AS images, "
            "(SELECT count(*) FROM instances i WHERE i.study_instance_uid = p.study_instance_uid AND "
            " i.state = 'received') AS waiting, "
            "(SELECT count(*) FROM instances i JOIN studies s ON s.study_instance_uid = i.study_instance_uid WHERE "
            f" i.study_instance_uid = p.study_instance_uid AND {OTHER_PATIENT}) AS other_patient, "
            "(SELECT v.finding || '|' || coalesce(v.agree, '') || '|' || v.user FROM reviews v WHERE "
            " v.sop_instance_uid = p.lead_sop_instance_uid AND v.kind = 'review' ORDER BY v.id DESC LIMIT 1) AS review "
            f"FROM (SELECT s.* FROM studies s WHERE {where} ORDER BY {_URGENCY} LIMIT ? OFFSET ?) p",
            (*args, size, size * page))
        return rows, total

    def worklist_version(self) -> str:
        """Changes whenever a study arrives, is classified or settles, or a review is recorded."""
        row = self.query("SELECT (SELECT count(*) FROM studies) AS s, (SELECT coalesce(max(last_received), 0) FROM "
                         "studies) AS r, (SELECT count(*) FROM results) AS c, (SELECT coalesce(max(id), 0) FROM "
                         "reviews) AS v, (SELECT count(*) FROM studies WHERE final = 1) AS f")[0]
        return f"{row['s']}.{row['r']:.3f}.{row['c']}.{row['v']}.{row['f']}"

    def study_page(self, study_id: int) -> dict | None:
        """A study by its number, with its images (and their results), the images still waiting, and every review."""
        rows = self.query("SELECT * FROM studies WHERE id = ?", (study_id,))
        if not rows:
            return None
        found, uid = rows[0], (rows[0]["study_instance_uid"],)
        found["waiting"] = self.query("SELECT count(*) AS n FROM instances WHERE study_instance_uid = ? AND "
                                      "state = 'received'", uid)[0]["n"]
        found["images"] = self.query(
            f"SELECT i.id, i.sop_instance_uid, i.path, i.received, i.patient_id, {_RESULT_COLUMNS}, "
            f"(SELECT {OTHER_PATIENT} FROM studies s WHERE s.study_instance_uid = i.study_instance_uid) AS "
            "other_patient, "
            "(SELECT v.finding FROM reviews v WHERE v.sop_instance_uid = i.sop_instance_uid AND v.kind = 'review' "
            " ORDER BY v.id DESC LIMIT 1) AS finding, "
            "(SELECT v.agree FROM reviews v WHERE v.sop_instance_uid = i.sop_instance_uid AND v.kind = 'review' "
            " ORDER BY v.id DESC LIMIT 1) AS agree "
            "FROM instances i LEFT JOIN results r ON r.sop_instance_uid = i.sop_instance_uid "
            "WHERE i.study_instance_uid = ? ORDER BY i.id", uid)
        lead = [image for image in found["images"] if image["sop_instance_uid"] == found["lead_sop_instance_uid"]]
        found["lead_p_normal"] = lead[0]["p_normal"] if lead else None
        found["history"] = self.query(
            "SELECT v.*, (SELECT count(*) FROM instances j WHERE j.study_instance_uid = v.study_instance_uid AND "
            "j.id <= i.id) AS image_number FROM reviews v LEFT JOIN instances i ON i.sop_instance_uid = "
            "v.sop_instance_uid WHERE v.study_instance_uid = ? ORDER BY v.id", uid)
        return found

    def image(self, instance_id: int) -> dict | None:
        """An image by its number, with its study's number and its result."""
        rows = self.query(f"SELECT i.*, s.id AS study_id, {_RESULT_COLUMNS} FROM instances i JOIN studies s ON "
                          "s.study_instance_uid = i.study_instance_uid LEFT JOIN results r ON r.sop_instance_uid = "
                          "i.sop_instance_uid WHERE i.id = ?", (instance_id,))
        return rows[0] if rows else None

    def neighbours(self, study_id: int) -> tuple[int | None, int | None]:
        """The studies before and after this one in the worklist's order (all studies): previous / next."""
        ids = [row["id"] for row in self.query(f"SELECT s.id FROM studies s ORDER BY {_URGENCY}")]
        if study_id not in ids:
            return None, None
        at = ids.index(study_id)
        return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)

    def audit(self, user: str, action: str, study_uid: str | None = None, detail: str = "") -> None:
        """One line of the screen's audit trail: never changed, never deleted."""
        with self._transaction() as db:
            db.execute("INSERT INTO audit (time, user, action, study_instance_uid, detail) VALUES (?, ?, ?, ?, ?)",
                       (time.time(), user, action, study_uid, detail[:200]))

    def audit_trail(self, limit: int = 200) -> list[dict]:
        """The latest lines, newest first, with each study's number (its link) rather than its UID."""
        return self.query("SELECT a.time, a.user, a.action, s.id AS study_id, a.detail FROM audit a LEFT JOIN studies s "
                          "ON s.study_instance_uid = a.study_instance_uid ORDER BY a.id DESC LIMIT ?", (limit,))

    def user_activity(self) -> list[dict]:
        """Each user: role, since when, last seen on the screen, reviews recorded."""
        return self.query(
            "SELECT u.name, u.role, u.created, (SELECT max(s.last_seen) FROM sessions s WHERE s.user = u.name) AS "
            "last_seen, (SELECT count(*) FROM reviews v WHERE v.user = u.name AND v.kind = 'review') AS reviews "
            "FROM users u ORDER BY u.name")

    def study_links(self) -> dict[str, int]:
        """Each study's number (its links), by Study Instance UID."""
        return {row["study_instance_uid"]: row["id"] for row in self.query("SELECT id, study_instance_uid FROM studies")}

    def monitored(self) -> tuple[list[dict], list[dict]]:
        """What weekly monitoring counts: each classified image (received, label, reasons, refer), each review
        (time, agree)."""
        images = self.query("SELECT i.received, r.label, r.reasons, r.refer FROM instances i JOIN results r ON "
                            "r.sop_instance_uid = i.sop_instance_uid WHERE r.label != ''")
        # the readers' word on each image reviewed, its latest: agree is NULL where they found it not assessable
        return images, self.query(
            "SELECT v.time, v.agree FROM reviews v WHERE v.kind = 'review' AND v.id = "
            "(SELECT max(w.id) FROM reviews w WHERE w.sop_instance_uid = v.sop_instance_uid AND w.kind = 'review')")
