"""The classify journal: every result is appended to FILE.journal beside the report as soon as it is known,
so a run killed by a power cut or a pulled stick resumes where it stopped.

The first line identifies the run (bundle checksums, folder, threshold and confidence floor); a journal from another run
is set aside, never mixed in. An image is taken from the journal only if its relative path, size and
modification time are unchanged. A torn last line (the crash itself) is ignored.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cxr_edge.run.result import Result

# The journal's own format: 2 stores a result as Result.as_record() (reasons as codes). A journal of another
# format is set aside like another run's: its images are classified again.
FORMAT = 2
FSYNC_SECONDS = 1.0  # lines are flushed to the OS at once (a killed process loses none); fsync bounds power loss


def journal_path(report: os.PathLike | str) -> Path:
    report = Path(report)
    return report.with_name(report.name + ".journal")


def image_key(folder: Path, name: str) -> tuple[str, int, int]:
    """(relative path, size, mtime in ns): an image whose key changed is classified again."""
    st = os.stat(os.path.join(folder, name))
    return name, st.st_size, st.st_mtime_ns


class Journal:
    def __init__(self, report: os.PathLike | str, identity: dict, restart: bool = False):
        self.path = journal_path(report)
        self.identity = identity
        self.done: dict[tuple[str, int, int], Result] = {}
        self.set_aside = False
        self.started = time.time()  # when the run began: an interrupted run's, once resumed
        if restart:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            self._load()
        fresh = not self.path.exists()
        self._fh = open(self.path, "a", encoding="utf-8")
        if fresh:
            self._write({"journal": FORMAT, **identity, "started": self.started})
        self._last_sync = time.monotonic()

    def _load(self) -> None:
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        header = _parse(lines[0]) if lines else None
        if header is None or header.get("journal") != FORMAT or \
                {k: header.get(k) for k in self.identity} != self.identity:
            # another bundle, folder, floor or journal format: these results do not belong to this run
            os.replace(self.path, self.path.with_name(self.path.name + ".old"))
            self.set_aside = True
            return
        self.started = float(header.get("started", self.started))
        for line in lines[1:]:
            entry = _parse(line)
            if entry is None or "key" not in entry:
                continue  # the torn last line of a crashed run
            key = tuple(entry["key"])
            self.done[key] = Result.from_record(entry["path"], entry, entry.get("skipped", ""))

    def _write(self, entry: dict) -> None:
        self._fh.write(json.dumps(entry) + "\n")
        self._fh.flush()

    def append(self, key: tuple[str, int, int], result: Result) -> None:
        self._write({"key": list(key), "path": result.path, **result.as_record(), "skipped": result.skipped})
        self.done[key] = result
        if time.monotonic() - self._last_sync >= FSYNC_SECONDS:
            os.fsync(self._fh.fileno())
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def remove(self) -> None:
        """After the final report is in place, the journal has done its job."""
        self.close()
        self.path.unlink(missing_ok=True)


def _parse(line: str):
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class FolderGone(OSError):
    """The folder went away mid-run (a stick pulled): the run stops, its journal keeps what was done."""


def run_with_journal(classifier, folder: os.PathLike | str, report: os.PathLike | str, recursive: bool = True,
                     restart: bool = False, progress=None, heatmaps: Path | None = None, visuals=None,
                     present=None, records=None):
    """Classify `folder`, resuming from REPORT.journal; returns (results in folder order, summary, journal).
    `visuals` (the HTML report's pictures) must live as long as the journal: a fresh journal empties it. With
    `present` (a function saying whether the folder is still there, e.g. still mounted), an image that cannot be
    read while the folder is gone stops the run with FolderGone instead of becoming an error row, so that the
    same folder back again resumes the run.

    The caller writes the report and then calls journal.remove().
    """
    from cxr_edge.inputs.discover import find_files
    from cxr_edge.run.classify import classify_paths, summarize

    folder = Path(folder)
    paths, passed_over = find_files(folder, recursive)
    keys = {name: _key_or_missing(folder, name) for name in paths}
    identity = {"bundle": sorted(entry["sha256"] for entry in classifier.bundle.manifest["files"].values()),
                "folder": str(folder.resolve()), "min_confidence": classifier.min_confidence,
                "threshold": classifier.threshold}
    if records is not None:  # a run that writes SR or FHIR resumes only a run that wrote the same
        identity["records"] = records.identity()
    journal = Journal(report, identity, restart)
    if visuals is not None and not journal.done:
        visuals.clear()  # pictures of a run this journal does not continue
    todo = [p for p in paths if keys[p] not in journal.done]
    key_by_rel = {keys[p][0]: keys[p] for p in todo}
    resumed = sum(not journal.done[keys[p]].skipped for p in paths if keys[p] in journal.done)  # rows, as counted

    def record(result: Result) -> None:
        if result.error and present is not None and not present():
            raise FolderGone(f"{folder} went away during the run")
        journal.append(key_by_rel[result.path], result)
        if progress:
            progress(len(journal.done), len(paths))

    start = time.perf_counter()
    try:
        for _ in classify_paths(classifier, folder, todo, record, heatmaps=heatmaps, visuals=visuals,
                                records=records):
            pass
    except FolderGone:
        journal.close()
        raise
    results = [journal.done[keys[p]] for p in paths]
    summary = summarize(results, time.perf_counter() - start, resumed, passed_over)
    return results, summary, journal


def _key_or_missing(folder: Path, name: str) -> tuple[str, int, int]:
    try:
        return image_key(folder, name)
    except OSError:  # vanished since the listing: classify it again, and let decoding report the error
        return name, -1, -1
