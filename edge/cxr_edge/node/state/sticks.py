"""The stick watcher's runs and their rows."""

from __future__ import annotations

import time

from cxr_edge.node.state.connection import _insert
from cxr_edge.run.result import Result


class Sticks:
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
