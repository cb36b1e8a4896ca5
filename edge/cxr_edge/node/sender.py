"""The sending thread: takes due objects from the outbox (cxr_edge.node.state), sends each to its destination
(C-STORE with pynetdicom, or an HTTP POST of the FHIR transaction Bundle), and marks it sent only on the peer's
success. Never sent again once its acknowledgement is recorded: the outbox holds each object once per destination
and skips what is sent. Delivery is at least once, not exactly once: a crash between the peer's success and that
record sends the object again at the next start, which the peer keeps as one copy (the UIDs and FHIR identifiers
are derived, and every Bundle entry is a conditional create; a PACS's "duplicate SOP instance" counts as stored). A destination that does not answer, or answers "try later" (DICOM out of resources, HTTP 5xx, 408, 429, or an
authorisation the admin must fix, 401 and 403), is tried again after a backoff that doubles from
`retry_first_seconds` up to `retry_max_seconds` (1 s to 1 h), with everything queued for it waiting, across
restarts too. An object refused for good (another DICOM failure status, an HTTP 4xx) is kept as failed with the
peer's message, not retried for ever.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from typing import Callable

from cxr_edge.node.config import Peer, SendConfig, parse_peer
from cxr_edge.node.outbox import dicom_destination, fhir_destination
from cxr_edge.node.state import Queued, State

TIMEOUT = 5  # seconds for a connection or a reply: within the node's 9 s to stop
# A FHIR server applies a transaction as a whole and may take tens of seconds on a busy day: waiting less, the node
# posted the Bundle again while the server was still at the first copy (a server that checks ifNoneExist on arrival
# and creates at the end then made duplicates). Only a closed connection (this timeout, a refusal) makes a re-post.
FHIR_TIMEOUT = 60
RETRY_LATER_HTTP = {401, 403, 408, 429}


class _PeerError(Exception):
    """`detail`, the peer's own words (a FHIR OperationOutcome may quote patient data), is kept in the database
    for the admin, never logged."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message + detail)
        self.public = message


class Retry(_PeerError):
    """The destination cannot take it now: try again after the backoff. `item`: the one that failed."""

    item: Queued | None = None


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
        # only what is configured now: objects queued for a destination since removed wait, shown in the outbox
        self.destinations = [*(dicom_destination(peer) for peer in send.dicom),
                             *([fhir_destination(send.fhir_url)] if send.fhir_url else [])]

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
        blocked = [d for d, until in self._blocked.items() if until > now]
        by_destination: dict[str, list[Queued]] = defaultdict(list)
        for item in self.state.due(now, self.destinations, blocked):
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
            self._back_off(destination, exc.item or items[0], exc)
        else:
            self._failures.pop(destination, None)
            self._blocked.pop(destination, None)

    def _outcome(self, item: Queued, send, *args) -> None:
        """Send one item; Refused marks it failed, Retry goes up to the destination's backoff."""
        try:
            send(item, *args)
        except Retry as exc:
            exc.item = item
            raise
        except (OSError, ValueError) as exc:  # its file gone or unreadable: nothing any retry could send
            exc = Refused(f"the outbox file {item.path} cannot be read ({type(exc).__name__})")
            self.state.failed(item.id, str(exc))
            self.log(f"{item.kind} {item.object_uid} not sent: {exc.public}")
            return
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
                self._outcome(item, _c_store, assoc, lambda: pydicom.dcmread(self.state.data / item.path))
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
            with _NO_REDIRECTS.open(request, timeout=FHIR_TIMEOUT) as response:
                reply = response.read(1 << 20)
        except _Redirected as exc:
            raise Refused(f"fhir_url redirects to {exc.location}: set [send] fhir_url to the FHIR base URL itself "
                          "(a redirected POST would lose the Bundle, and the token would follow it)") from None
        except urllib.error.HTTPError as exc:
            message = f"HTTP {exc.code} {exc.reason}"
            if exc.code in RETRY_LATER_HTTP or exc.code >= 500:
                raise Retry(message, _diagnostics(exc)) from None
            raise Refused(message, _diagnostics(exc)) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise Retry(f"{getattr(exc, 'reason', None) or type(exc).__name__}") from None
        if not _transaction_response(reply):
            raise Refused("the reply is not a FHIR transaction-response Bundle: is fhir_url the FHIR server's base "
                          "URL?")


class _Redirected(Exception):
    def __init__(self, location: str):
        self.location = location


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect of the POST as a GET, with the token, to any host: never."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise _Redirected(newurl)


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def _transaction_response(reply: bytes) -> bool:
    try:
        bundle = json.loads(reply or b"{}")
    except ValueError:
        return False
    return isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle" and \
        bundle.get("type") == "transaction-response"


DUPLICATE = 0x0111  # "Duplicate SOP Instance": the PACS has it already, from a send whose success was not recorded
RESOURCES = (0xA700, 0x0213)  # out of resources, resource limitation: it may take it later


def _c_store(item: Queued, assoc, read) -> None:
    from pynetdicom.status import code_to_category

    try:
        ds = read()
    except Exception as exc:  # noqa: BLE001 - pydicom's many errors for a damaged file: it can never be sent
        raise ValueError(type(exc).__name__) from None
    try:
        status = assoc.send_c_store(ds)
    except ValueError as exc:  # no accepted presentation context: the peer does not store this kind of object
        raise Refused(f"not accepted ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - the association went away under us, or pynetdicom failed
        raise Retry(f"association lost ({type(exc).__name__})") from None
    if "Status" not in status:
        raise Retry("no reply to the store (association lost)")
    code = int(status.Status)
    if code_to_category(code) in ("Success", "Warning") or code == DUPLICATE:
        return
    if code in RESOURCES or code & 0xFF00 == 0xA700:
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
