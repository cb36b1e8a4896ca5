"""A candidate bundle's results (shadow mode, cxr_edge.node.candidate): which images it still has to classify, its
results, and the reviewed images both bundles classified, for the comparison."""

from __future__ import annotations

import time

from cxr_edge.node.state.connection import _insert
from cxr_edge.node.state.receiving import Instance
from cxr_edge.run.result import RECORD_COLUMNS, Result

_SHADOW_COLUMNS = ", ".join(f"c.{column} AS candidate_{column}" for column in RECORD_COLUMNS)


class Shadow:
    def shadow_pending(self, bundle: str, after: int = 0, limit: int = 8) -> list[Instance]:
        """Images the active bundle has classified and `bundle` has not, oldest first, from image id `after` on (the
        candidate's sampling has seen the earlier ones)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT i.sop_instance_uid, i.sop_class_uid, i.study_instance_uid, i.series_instance_uid, i.source, "
                "i.path, i.received, i.id FROM instances i JOIN results r ON r.sop_instance_uid = i.sop_instance_uid "
                "WHERE i.id > ? AND NOT EXISTS (SELECT 1 FROM shadow_results c WHERE c.sop_instance_uid = "
                "i.sop_instance_uid AND c.bundle = ?) ORDER BY i.id LIMIT ?", (after, bundle, limit)).fetchall()
        return [Instance(*row) for row in rows]

    def review_count(self) -> int:
        """Review entries so far (each a change the comparison may see)."""
        return self.query("SELECT count(*) AS n FROM reviews")[0]["n"]

    def shadow_total(self) -> int:
        """A candidate's results so far, whichever the bundle."""
        return self.query("SELECT count(*) AS n FROM shadow_results")[0]["n"]

    def last_received(self) -> float:
        """When the newest image was received (0 before the first)."""
        rows = self.query("SELECT received FROM instances ORDER BY id DESC LIMIT 1")
        return rows[0]["received"] if rows else 0.0

    def record_shadow(self, sop_instance_uid: str, bundle: str, result: Result) -> None:
        with self._transaction() as db:
            _insert(db, "INSERT OR REPLACE INTO shadow_results", {"sop_instance_uid": sop_instance_uid,
                                                                  "bundle": bundle, "classified": time.time(),
                                                                  **result.as_record()})

    def shadow_counts(self, bundle: str) -> dict:
        """How many images the active bundle and the candidate `bundle` classified (results with a label or an
        error), and how many of the candidate's were reviewed."""
        return self.query(
            "SELECT (SELECT count(*) FROM results) AS active, "
            "(SELECT count(*) FROM shadow_results WHERE bundle = ?) AS candidate, "
            "(SELECT count(*) FROM shadow_results c WHERE c.bundle = ? AND EXISTS (SELECT 1 FROM reviews v WHERE "
            "v.sop_instance_uid = c.sop_instance_uid AND v.kind = 'review')) AS candidate_reviewed",
            (bundle, bundle))[0]

    def shadow_results_of(self, bundle: str, sop_instance_uids: list[str]) -> dict[str, dict]:
        """The candidate's stored result of each image it classified among `sop_instance_uids`, by UID."""
        found = {}
        for start in range(0, len(sop_instance_uids), 500):  # SQLite's bound on a statement's parameters
            chunk = sop_instance_uids[start:start + 500]
            for row in self.query(f"SELECT sop_instance_uid, {', '.join(RECORD_COLUMNS)} FROM shadow_results WHERE "
                                  f"bundle = ? AND sop_instance_uid IN ({', '.join('?' * len(chunk))})",
                                  (bundle, *chunk)):
                found[row.pop("sop_instance_uid")] = row
        return found
