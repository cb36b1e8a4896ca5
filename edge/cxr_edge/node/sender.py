"""The sending thread: takes due objects from the outbox (cxr_edge.node.state), sends each to its destination
(C-STORE with pynetdicom, or an HTTP POST of the FHIR transaction Bundle), and marks it sent only on the peer's
success. Never sent twice once acknowledged: the outbox holds each object once per destination and skips what is
sent. A destination that does not answer, or answers "try later" (DICOM out of resources, HTTP 5xx, 408, 429, or an
authorisation the admin must fix, 401 and 403), is tried again after a backoff that doubles from
`retry_first_seconds` up to `retry_max_seconds` (1 s to 1 h), with everything queued for it waiting, across
restarts too. An object refused for good (another DICOM failure status, an HTTP 4xx) is kept as failed with the
peer's message, not retried for ever.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from typing import Callable

from cxr_edge.node.config import Peer, SendConfig, parse_peer
from cxr_edge.node.state import Queued, State

TIMEOUT = 10  # seconds for a connection or a reply: short, so that stopping the node never waits long
RETRY_LATER_HTTP = {401, 403, 408, 429}


class _PeerError(Exception):
    """`detail`, the peer's own words (a FHIR OperationOutcome may quote patient data), is kept in the database
    for the admin, never logged."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message + detail)
        self.public = message


class Retry(_PeerError):
    """The destination cannot take it now: try again after the backoff."""


class Refused(_PeerError):
    """The destination refused the object for good."""


class Sender(threading.Thread):
    def __init__(self, send: SendConfig, calling_ae: str, state: State, log: Callable[[str], None]):
        super().__init__(name="cxr-send", daemon=True)
        self.send, self.calling_ae, self.state, self.log = send, calling_ae, state, log
        self.token = os.environ.get(send.fhir_token_env, "") if send.fhir_token_env else ""
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._failures: dict[str, int] = defaultdict(int)  # failures in a row, per destination
        self._blocked: dict[str, float] = {}  # destination -> time of its next try

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = self._pass()
            except Exception as exc:  # noqa: BLE001 - the database busy or failing: say so, wait, try again
                self.log(f"sending paused: {type(exc).__name__}: {exc}")
                busy = False
                self._stopping.wait(5)
            if not busy:
                self._wake.wait(timeout=1.0)
                self._wake.clear()

    def _pass(self) -> bool:
        now = time.time()
        by_destination: dict[str, list[Queued]] = defaultdict(list)
        for item in self.state.due(now):
            if self._blocked.get(item.destination, 0) <= now:
                by_destination[item.destination].append(item)
        for destination, items in by_destination.items():
            if self._stopping.is_set():
                break
            self._send_all(destination, items)
        return bool(by_destination)

    def _send_all(self, destination: str, items: list[Queued]) -> None:
        kind, _, target = destination.partition(":")
        try:
            if kind == "dicom":
                self._store(parse_peer(target, "destination"), items)
            else:
                for item in items:
                    if self._stopping.is_set():
                        return
                    self._outcome(item, self._post, target)
        except Retry as exc:
            self._back_off(destination, items[0], exc)
        else:
            self._failures.pop(destination, None)
            self._blocked.pop(destination, None)

    def _outcome(self, item: Queued, send, *args) -> None:
        """Send one item; Refused marks it failed, Retry goes up to the destination's backoff."""
        try:
            send(item, *args)
        except Refused as exc:
            self.state.failed(item.id, str(exc))
            self.log(f"{item.kind} {item.object_uid} refused by {item.destination.partition(':')[2]} for good: "
                     f"{exc.public}")
            return
        self.state.sent(item.id)
        self._remove_if_done(item)
        self.log(f"sent {item.kind} {item.object_uid} to {item.destination.partition(':')[2]}")

    def _back_off(self, destination: str, item: Queued, error: Retry) -> None:
        self._failures[destination] += 1
        failures = self._failures[destination]
        delay = min(self.send.retry_max_seconds, self.send.retry_first_seconds * 2 ** (failures - 1))
        until = time.time() + delay
        self._blocked[destination] = until
        self.state.retry(item.id, until, str(error))
        self.state.postpone(destination, until)
        self.log(f"cannot send to {destination.partition(':')[2]} ({error.public}): trying again in {delay:g} s "
                 f"({failures} failure(s) in a row)")

    def _remove_if_done(self, item: Queued) -> None:
        """An object's file goes once every destination has it (a failed one keeps it, for the admin)."""
        if not self.state.path_still_needed(item.path):
            try:
                (self.state.data / item.path).unlink()
            except FileNotFoundError:
                pass

    # DICOM
    def _store(self, peer: Peer, items: list[Queued]) -> None:
        import pydicom
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
        from pynetdicom import AE
        from pynetdicom.sop_class import ComprehensiveSRStorage, SecondaryCaptureImageStorage

        ae = AE(ae_title=self.calling_ae)
        for context in (ComprehensiveSRStorage, SecondaryCaptureImageStorage):
            ae.add_requested_context(context, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = TIMEOUT
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
        if not assoc.is_established:
            why = "association rejected" if assoc.is_rejected else "no association (not answering?)"
            raise Retry(f"{why}")
        try:
            for item in items:
                if self._stopping.is_set():
                    return
                ds = pydicom.dcmread(self.state.data / item.path)
                self._outcome(item, _c_store, assoc, ds)
        finally:
            if assoc.is_established:
                assoc.release()

    # FHIR
    def _post(self, item: Queued, url: str) -> None:
        data = (self.state.data / item.path).read_bytes()
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            message = f"HTTP {exc.code} {exc.reason}"
            if exc.code in RETRY_LATER_HTTP or exc.code >= 500:
                raise Retry(message, _diagnostics(exc)) from None
            raise Refused(message, _diagnostics(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise Retry(f"{getattr(exc, 'reason', exc)}") from None


def _c_store(item: Queued, assoc, ds) -> None:
    try:
        status = assoc.send_c_store(ds)
    except ValueError as exc:  # no accepted presentation context: the peer does not store this kind of object
        raise Refused(f"not accepted ({exc})") from None
    except RuntimeError as exc:  # the association went away under us
        raise Retry(f"association lost ({exc})") from None
    if "Status" not in status:
        raise Retry("no reply to the store (association lost)")
    code = int(status.Status)
    if code == 0 or code & 0xF000 == 0xB000:  # success, or stored with a warning
        return
    if code & 0xFF00 == 0xA700:
        raise Retry(f"out of resources (status 0x{code:04X})")
    raise Refused(f"store failed with status 0x{code:04X}")


def _diagnostics(exc: urllib.error.HTTPError) -> str:
    """The OperationOutcome's first diagnostics, shortened: what the admin needs to see why."""
    try:
        outcome = json.loads(exc.read(4096) or b"{}")
        text = outcome.get("issue", [{}])[0].get("diagnostics", "")
    except (ValueError, AttributeError, IndexError, OSError):
        return ""
    return f": {text[:200]}" if text else ""
