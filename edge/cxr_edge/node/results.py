"""The node's result rows as `cxr-edge results` and the web API give them: the node's keys, then `classify`'s."""

from __future__ import annotations

import time
from datetime import datetime

from cxr_edge.run.result import Result

NODE_KEYS = ("study_instance_uid", "sop_instance_uid", "received", "source", "accession_number")


def result_row(record: dict) -> dict:
    """A database row as `classify`'s row keys (the reasons in words and as codes), after the node's own."""
    return {"study_instance_uid": record["study_instance_uid"], "sop_instance_uid": record["sop_instance_uid"],
            "received": datetime.fromtimestamp(record["received"]).astimezone().isoformat(timespec="seconds"),
            "source": record["source"], "accession_number": record.get("accession_number") or "",
            **Result.from_record(record["path"], record).as_row()}


def since_time(text: str | None) -> float | None:
    """An ISO date or time as seconds; ValueError with what to write instead."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date or time; use e.g. 2026-12-01 or 2026-12-01T08:00") from None
    return moment.timestamp() if moment.tzinfo else time.mktime(moment.timetuple())
