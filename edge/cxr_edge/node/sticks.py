"""USB sticks: each file system mounted below `[usb] watch` (Raspberry Pi OS desktop mounts sticks at
/media/USER/LABEL; deploy/ has the udev rule and mount unit that do the same on Raspberry Pi OS Lite) is
classified into `data/reports/LABEL-DATE.csv` and `.html`, the reports of `classify`, never writing to the stick.

A stick pulled mid-run stops that run without losing what was done: the run's journal (beside the report) keeps
every result, and the same stick back the same day resumes it. The watcher has its own thread and its own
interpreters (a Classifier of its own: interpreters are not shared between threads), one stick at a time, so a
stick of thousands of files never holds up DICOM receiving or its classification.
"""

from __future__ import annotations

import datetime
import os
import re
import threading
from pathlib import Path
from typing import Callable

from cxr_edge.node.config import UsbConfig
from cxr_edge.node.state import State, private_folder

REPORTS = "reports"


class StickWatcher(threading.Thread):
    def __init__(self, config: UsbConfig, classifier, state: State, log: Callable[[str], None],
                 poll_seconds: float = 1.0, on_stick: Callable[[Path], object] | None = None):
        """`on_stick`: called with each stick as it appears, before its run (a candidate bundle staged from it)."""
        super().__init__(name="cxr-sticks", daemon=True)
        self.on_stick = on_stick
        self.config, self.classifier, self.state, self.log = config, classifier, state, log
        self.poll_seconds = poll_seconds
        self.watch = Path(config.watch)
        self._stopping = threading.Event()
        self._seen: set[Path] = set()
        self._warned_absent = False

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            mounted = set(self.sticks())
            self._seen &= mounted  # a stick gone and back is a new insertion
            for stick in sorted(mounted - self._seen):
                if self._stopping.is_set():
                    return
                self._seen.add(stick)
                try:
                    if self.on_stick is not None:
                        self.on_stick(stick)
                    finished = self.classify_stick(stick)
                except Exception as exc:  # noqa: BLE001 - one stick's fault must not stop the watcher
                    self.log(f"stick {_label(stick)}: could not be classified ({type(exc).__name__}: {exc})")
                    finished = True
                if not finished:
                    self._seen.discard(stick)  # pulled mid-run: seen again, even if it is back before the next look
            self._stopping.wait(self.poll_seconds)

    def sticks(self) -> list[Path]:
        """The file systems mounted below `watch`, one or two levels down (/media/LABEL, /media/USER/LABEL);
        with mount_points_only = false, every folder directly below it (for a folder standing in for a stick)."""
        if not self.watch.is_dir():
            if not self._warned_absent:
                self.log(f"watch folder {self.watch} does not exist: no stick is seen until it does")
                self._warned_absent = True
            return []
        self._warned_absent = False
        found = []
        for first in _folders(self.watch):
            if not self.config.mount_points_only or os.path.ismount(first):
                found.append(first)
            elif self.config.mount_points_only:
                found += [second for second in _folders(first) if os.path.ismount(second)]
        return found

    def present(self, stick: Path) -> bool:
        return stick.is_dir() and (not self.config.mount_points_only or os.path.ismount(stick))

    def classify_stick(self, stick: Path) -> bool:
        """One stick's run; False when the stick went away before it finished."""
        from cxr_edge.pictures.visuals import Visuals, visuals_dir
        from cxr_edge.language import SOURCE, using
        from cxr_edge.reports.formats import ReportNotWritten, classify_into_report, summary_text
        from cxr_edge.run.journal import FolderGone

        label = _label(stick)
        reports = self.state.data / REPORTS
        private_folder(reports)
        report = reports / f"{label}-{datetime.date.today().isoformat()}.html"
        run_id = self.state.start_stick_run(label, str(stick), str(report.relative_to(self.state.data)))
        self.log(f"stick {label}: classifying into {report.relative_to(self.state.data)}")
        try:
            # the journal and the pictures are kept: the same stick again today takes every result from them
            results, summary, _ = classify_into_report(self.classifier, stick, report, csv_beside=True,
                                                       keep_journal=True, visuals=Visuals(visuals_dir(report)),
                                                       present=lambda: self.present(stick))
        except ReportNotWritten as exc:  # e.g. the data folder full: the journal keeps every result
            self.state.finish_stick_run(run_id, "interrupted")
            self.log(f"stick {label}: the reports could not be written ({exc}); insert the stick again to retry")
            return True
        except (FolderGone, OSError) as exc:
            self.state.finish_stick_run(run_id, "interrupted")
            if not self.present(stick):
                self.log(f"stick {label}: stopped, the stick went away ({type(exc).__name__}); what was done is "
                         "kept, and the same stick back today resumes the run")
                return False
            self.log(f"stick {label}: stopped: {exc}; what was done is kept; insert the stick again to retry")
            return True
        self.state.finish_stick_run(run_id, "finished", [r for r in results if not r.skipped], summary.referred,
                                    summary.errors)
        if summary.resumed:
            self.log(f"stick {label}: resumed, {summary.resumed} image(s) taken from the run's journal")
        if summary.images == 0:
            self.log(f"stick {label}: no image found on it: check that it holds the radiographs")
        with using(SOURCE):  # the log is in English, whatever the reports speak
            self.log(f"stick {label}: {summary_text(summary)}")
        return True


def _folders(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    except OSError:
        return []


def _label(stick: Path) -> str:
    """The stick's label as a file name: its mount folder's name, with anything but letters, digits, '.', '_' and
    '-' made '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", stick.name).strip("._") or "stick"
