"""What the pages show, from the node's database: the worklist (most urgent first, by filter, 50 a page), one
study with its images and review history, and a version number that changes whenever the worklist does (the page
polls it, so new studies appear without the clinician reloading)."""

from __future__ import annotations

from cxr_edge.node.state import State

PAGE = 50
FILTERS = {
    "to_review": "NOT EXISTS (SELECT 1 FROM reviews v WHERE v.study_instance_uid = s.study_instance_uid "
                 "AND v.kind = 'review')",
    "referred": "s.refer = 1",
    "reviewed": "EXISTS (SELECT 1 FROM reviews v WHERE v.study_instance_uid = s.study_instance_uid "
                "AND v.kind = 'review')",
    "all": "1",
}
FILTER_NAMES = {"to_review": "To review", "referred": "Referred", "reviewed": "Reviewed", "all": "All"}
# the worklist's order (cxr_edge.reports.worklist.urgency): referred, then abnormal by probability, then normal,
# then unreadable; newest first within each
URGENCY = ("CASE WHEN s.label = '' THEN 3 WHEN s.refer THEN 0 WHEN s.label != 'normal' THEN 1 ELSE 2 END, "
           "coalesce(s.p_abnormal, 0) DESC, s.first_received DESC")


def worklist(state: State, which: str, page: int) -> tuple[list[dict], int]:
    """One page of studies and the number of studies the filter holds."""
    where = FILTERS[which]
    total = state.query(f"SELECT count(*) AS n FROM studies s WHERE {where}")[0]["n"]
    rows = state.query(
        "SELECT p.*, "
        # the leading image, as the worker stored it: its thumbnail and its reasons, side by side
        "(SELECT r.reasons FROM results r WHERE r.sop_instance_uid = p.lead_sop_instance_uid) AS reasons, "
        "(SELECT i.id FROM instances i WHERE i.sop_instance_uid = p.lead_sop_instance_uid) AS thumb, "
        "(SELECT count(*) FROM instances i WHERE i.study_instance_uid = p.study_instance_uid) AS images, "
        "(SELECT count(*) FROM instances i WHERE i.study_instance_uid = p.study_instance_uid AND i.state = 'received') "
        " AS waiting, "
        "(SELECT v.finding || '|' || v.agree || '|' || v.user FROM reviews v WHERE v.study_instance_uid = "
        " p.study_instance_uid AND v.kind = 'review' ORDER BY v.id DESC LIMIT 1) AS review "
        f"FROM (SELECT s.* FROM studies s WHERE {where} ORDER BY {URGENCY} LIMIT ? OFFSET ?) p",
        (PAGE, PAGE * page))
    return rows, total


def version(state: State) -> str:
    """Changes whenever a study arrives, is classified or settles, or a review is recorded."""
    row = state.query("SELECT (SELECT count(*) FROM studies) AS s, (SELECT coalesce(max(last_received), 0) FROM "
                      "studies) AS r, (SELECT count(*) FROM results) AS c, (SELECT coalesce(max(id), 0) FROM reviews) "
                      "AS v, (SELECT count(*) FROM studies WHERE final = 1) AS f")[0]
    return f"{row['s']}.{row['r']:.3f}.{row['c']}.{row['v']}.{row['f']}"


def study(state: State, study_id: int) -> dict | None:
    rows = state.query("SELECT * FROM studies WHERE id = ?", (study_id,))
    if not rows:
        return None
    found = rows[0]
    found["waiting"] = state.query("SELECT count(*) AS n FROM instances WHERE study_instance_uid = ? AND state = "
                                   "'received'", (found["study_instance_uid"],))[0]["n"]
    found["images"] = state.query(
        "SELECT i.id, i.sop_instance_uid, i.path, i.received, r.label, r.p_normal, r.p_lung_opacity, "
        "r.p_viral_pneumonia, r.p_covid19, r.refer, r.reasons, r.error FROM instances i LEFT JOIN results r ON "
        "r.sop_instance_uid = i.sop_instance_uid WHERE i.study_instance_uid = ? ORDER BY i.id",
        (found["study_instance_uid"],))
    found["history"] = state.query("SELECT * FROM reviews WHERE study_instance_uid = ? ORDER BY id",
                                   (found["study_instance_uid"],))
    return found


def instance(state: State, instance_id: int) -> dict | None:
    rows = state.query("SELECT i.*, s.id AS study_id, r.label, r.p_normal, r.p_lung_opacity, r.p_viral_pneumonia, "
                       "r.p_covid19, r.refer, r.reasons, r.error, r.ood_score FROM instances i JOIN studies s ON "
                       "s.study_instance_uid = i.study_instance_uid LEFT JOIN results r ON r.sop_instance_uid = "
                       "i.sop_instance_uid WHERE i.id = ?", (instance_id,))
    return rows[0] if rows else None
