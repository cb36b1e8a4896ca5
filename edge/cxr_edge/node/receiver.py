"""The DICOM listener (pynetdicom, MIT): C-ECHO, and C-STORE of the image storage classes the box reads, in
every transfer syntax `cxr_edge` decodes.

A success status goes back only once the dataset is on disk as received (written to a temporary name, fsynced,
renamed, the folder fsynced) and recorded in the database: the unit may delete its copy then. Calling AE titles
not allowed are rejected at association; free space below the watermark refuses the store with "out of
resources"; so does a decompression bomb or an image over the pixel limit (cxr_edge.inputs.limits: checked from the
header, a deflated dataset inflated as a stream), never stored; a dataset that cannot be parsed gets a failure
status and the association goes on; the same SOP
Instance UID sent twice is stored and classified once; an object that is not an image is refused with a
status, not stored. Log lines carry UIDs and AE titles, never a patient's name or ID.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import threading
import time
from typing import Callable

from cxr_edge.inputs.dicom import is_own_result
from cxr_edge.inputs.limits import TooLarge, header_of
from cxr_edge.node.config import DicomConfig
from cxr_edge.node.state import Instance, State, StudyHeader, private_folder, write_durably

# The image storage classes the box reads: CR, DX for presentation and for processing, secondary capture.
IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1": "CR Image",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image",
}
# Every transfer syntax cxr_edge.inputs.dicom decodes.
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
    "1.2.840.10008.1.2.2",  # explicit VR big endian
    "1.2.840.10008.1.2.5",  # RLE lossless
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended (12-bit)
    "1.2.840.10008.1.2.4.57",  # JPEG lossless, process 14
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
)
SUCCESS = 0x0000
SOP_CLASS_NOT_SUPPORTED = 0x0122  # "Refused: SOP Class not supported": not an image the box reads
OUT_OF_RESOURCES = 0xA700  # "Refused: Out of Resources"
CANNOT_UNDERSTAND = 0xC210  # "Error: Cannot understand": the dataset does not parse
PROCESSING_FAILURE = 0x0110  # "Processing failure": the box's own trouble (its database), not the unit's data
MAX_PDU = 4 * 2**20
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
IMAGES = "images"


class Receiver:
    """C-ECHO and C-STORE handlers writing into `state`'s data folder; `on_stored` is told of each new instance
    (the worker's wake-up)."""

    def __init__(self, config: DicomConfig, state: State, log: Callable[[str], None],
                 on_stored: Callable[[], None] = lambda: None):
        self.config, self.state, self.log, self.on_stored = config, state, log, on_stored
        self.images = state.data / IMAGES
        private_folder(self.images)
        self._full = False
        self.server = None
        self.last_association = None
        self._connections: dict[str, int] = {}  # open connections by peer address
        self._warned: dict[str, bool] = {}
        self._connections_lock = threading.Lock()

    def start(self):
        """Listen on the configured address, in pynetdicom's own threads; returns at once."""
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=self.config.ae_title)
        # Large PDUs: a 10 MB radiograph in 16 kB PDUs (the default) costs pynetdicom a Python loop per PDU;
        # storescu sends up to the size the acceptor announces
        ae.maximum_pdu_size = MAX_PDU
        ae.add_supported_context(Verification)
        for sop_class in IMAGE_CLASSES:
            ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
        # other storage classes are offered too, so that a unit sending one hears why it is refused (a status)
        from pynetdicom import StoragePresentationContexts

        for context in StoragePresentationContexts:
            if context.abstract_syntax not in IMAGE_CLASSES:
                ae.add_supported_context(context.abstract_syntax, list(TRANSFER_SYNTAXES[:4]))
        if not self.config.any_caller:
            ae.require_calling_aet = list(self.config.allowed_callers)
        ae.require_called_aet = True  # an association for another AE title is not this box's
        # A connection that sends no association request within ACSE_SECONDS is closed (pynetdicom's ARTIM timer);
        # one address holds at most PER_ADDRESS connections: a flood of idle connections from one machine can no
        # longer take every slot the X-ray unit needs.
        ae.acse_timeout = ACSE_SECONDS
        ae.maximum_associations = MAX_ASSOCIATIONS
        handlers = [(evt.EVT_C_ECHO, lambda event: SUCCESS), (evt.EVT_C_STORE, self.handle_store),
                    (evt.EVT_ACCEPTED, self._accepted), (evt.EVT_REJECTED, self._rejected),
                    (evt.EVT_CONN_OPEN, self._opened), (evt.EVT_CONN_CLOSE, self._closed)]
        self.server = ae.start_server((self.config.bind, self.config.port), block=False, evt_handlers=handlers)
        return self.server

    def stop(self, timeout: float = 8.0) -> None:
        """Stop listening and close every association: the listening socket first, then an abort to each open
        association (a C-STORE in hand finishes writing; the unit sends again what got no success status), then
        their threads, within `timeout` seconds."""
        if self.server is None:
            return
        deadline = time.monotonic() + timeout
        associations = list(self.server.active_associations)
        self.server.shutdown()
        for association in associations:
            association.abort()
        for association in associations:
            association.join(timeout=max(0.1, deadline - time.monotonic()))
        self.server = None

    def _opened(self, event) -> None:
        address = _peer(event)
        with self._connections_lock:
            self._connections[address] = self._connections.get(address, 0) + 1
            over = self._connections[address] > PER_ADDRESS
        if over:
            if not self._warned.get(address):
                self.log(f"connections from {loggable(address)} over {PER_ADDRESS} at once: closing the extra ones")
                self._warned[address] = True
            event.assoc.abort()

    def _closed(self, event) -> None:
        address = _peer(event)
        with self._connections_lock:
            self._connections[address] = max(0, self._connections.get(address, 1) - 1)
            if not self._connections[address]:
                self._warned.pop(address, None)

    @staticmethod
    def _caller(event) -> str:
        return loggable(str(event.assoc.requestor.ae_title).strip())

    def _accepted(self, event) -> None:
        self.last_association = (time.time(), self._caller(event))
        self.log(f"association accepted from {self._caller(event)} ({event.assoc.requestor.address})")

    def _rejected(self, event) -> None:
        self.log(f"association rejected: calling AE title {self._caller(event)} is not in allowed_callers "
                 f"({event.assoc.requestor.address})")

    def handle_store(self, event) -> int:
        caller = self._caller(event)
        sop_class = loggable(str(event.request.AffectedSOPClassUID))
        uid = loggable(str(event.request.AffectedSOPInstanceUID))  # a peer's text: never a second line in the log
        if sop_class not in IMAGE_CLASSES:
            self.log(f"refused {uid} from {caller}: SOP class {sop_class} is not an image the box reads")
            return SOP_CLASS_NOT_SUPPORTED
        if not self._space_left():
            return OUT_OF_RESOURCES
        if self.state.has_instance(uid):
            self.log(f"duplicate {uid} from {caller}: stored already, not stored again")
            return SUCCESS
        data = event.encoded_dataset()  # the Part 10 bytes as received: what is written to disk
        try:
            # the header alone (decoding a 10 MB pixel array on the receiving thread would halve its speed), a
            # deflated dataset inflated as a stream, and the pixel count checked before anything is stored
            ds = header_of(data)
            study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
            if str(ds.SOPInstanceUID) != uid or not all(_UID.fullmatch(u) for u in (study, series, uid)):
                raise ValueError("UIDs missing, malformed or not matching the request")
            header = _header(ds)
        except TooLarge as exc:  # a decompression bomb, or an image no chest radiograph is: never stored
            self.log(f"refused {uid} from {caller}: {exc}")
            return OUT_OF_RESOURCES
        except Exception as exc:  # noqa: BLE001 - any parse failure of a peer's bytes: a status, and go on
            self.log(f"failed {uid} from {caller}: the dataset cannot be parsed ({type(exc).__name__}: "
                     f"{loggable(str(exc))})")
            return CANNOT_UNDERSTAND
        if is_own_result(ds):  # never classify its own heatmap: a PACS that routes everything back would loop
            self.log(f"not stored {uid} from {caller}: a cxr-edge result (its heatmap), not a radiograph; answered "
                     "success, as the PACS has it already")
            return SUCCESS
        relative = f"{IMAGES}/{study}/{uid}.dcm"
        try:
            write_durably(self.state.data / relative, data)
        except OSError as exc:  # the disk: the unit should keep the image and send it again later
            self.log(f"refused {uid} from {caller}: it could not be written ({exc.strerror or exc}): out of "
                     "resources; the unit keeps it and sends it again")
            return OUT_OF_RESOURCES
        try:
            added = self.state.add_instance(Instance(uid, sop_class, study, series, f"dicom:{caller}", relative,
                                                     time.time()), header)
        except sqlite3.Error as exc:  # the database (locked past its timeout, full, read-only): not the data's fault
            self.log(f"refused {uid} from {caller}: it could not be recorded ({type(exc).__name__}: "
                     f"{loggable(str(exc))}): processing failure; the unit sends it again")
            return PROCESSING_FAILURE
        self.log(f"stored {uid} (study {study}) from {caller}" if added else f"duplicate {uid} from {caller}")
        self.on_stored()
        return SUCCESS

    def _space_left(self) -> bool:
        free_mb = shutil.disk_usage(self.state.data).free / 2**20
        full = free_mb < self.config.min_free_mb
        if full != self._full:  # one line when it fills and one when space returns, not one per image
            self.log(f"free space {free_mb:.0f} MB in {self.state.data} is below min_free_mb "
                     f"{self.config.min_free_mb}: new images are refused (out of resources)" if full else
                     f"free space {free_mb:.0f} MB is back above min_free_mb {self.config.min_free_mb}: "
                     "accepting images again")
            self._full = full
        return not full


ACSE_SECONDS = 5  # from the connection to its association request: dcmtk's units send it at once
MAX_ASSOCIATIONS = 32  # pynetdicom's default is 10: room for a few units and an idle connection or two
PER_ADDRESS = 4  # connections one address may hold at once


def loggable(text: str) -> str:
    """A peer's text fit for one log line: control characters as \\xNN escapes (cxr_edge.run.result.printable is
    for file names)."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def _peer(event) -> str:
    """The address a connection event comes from (pynetdicom gives (host, port))."""
    return event.address[0] if isinstance(event.address, tuple) else str(event.address)


# The most each kept header value may hold: its VR's length (PS3.5 6.2; a person name per component group).
VR_LENGTHS = {"PatientID": 64, "PatientName": 64, "AccessionNumber": 16, "StudyDate": 8, "StudyDescription": 64,
              "PatientSex": 16, "PatientAge": 4, "PatientBirthDate": 8}
# C0 and C1 controls, and the bidirectional embeddings, overrides, isolates and marks: a name ending in U+202E
# would show the patient ID after it reversed
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def header_text(keyword: str, value) -> str:
    """A header value as the node keeps it: no control or bidirectional control character, cut to its VR's length
    with a visible ellipsis (a person name: each of its up to three component groups)."""
    text = _UNSHOWABLE.sub("", str(value or ""))
    limit = VR_LENGTHS.get(keyword, 64)
    groups = text.split("=")[:3] if keyword == "PatientName" else [text]
    return "=".join(group if len(group) <= limit else group[:limit - 1] + "\u2026" for group in groups)


def _header(ds) -> StudyHeader:
    text = lambda keyword: header_text(keyword, ds.get(keyword, ""))  # noqa: E731
    return StudyHeader(text("PatientID"), text("PatientName"), text("AccessionNumber"), text("StudyDate"),
                       text("StudyDescription"), text("PatientSex"), text("PatientAge"), text("PatientBirthDate"))
