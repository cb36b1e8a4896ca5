"""`cxr-edge serve`: the node's start, run and stop.

Start: the configuration checked key by key; the configuration file, the trust folder and the data folder
refused when others can write them (whoever can add a key decides what the box runs); the bundle loaded with
classify's rules (signature, gate, self-test: a failure stops the node with exit status 2 and the self-test's
message); then the database, the classifying thread, the stick watcher and the DICOM listener. SIGTERM or
SIGINT: the listener stops and aborts its open associations, the image in hand is finished, exit 0 within 10 s.
A thread that dies stops the node (exit 2), so that systemd restarts it rather than it answering "stored" and
classifying nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from cxr_edge.node.config import NodeConfig


class StartError(RuntimeError):
    """The node cannot start: the message names the file or folder and the fix."""


class _Stderr(logging.StreamHandler):
    """Whole lines on the process's stderr of the moment (a test's capture too): logging writes a record's text and
    its line end in one call, under the handler's lock, so two threads' lines never merge (print wrote them apart)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


class _Lines(logging.Formatter):
    """`cxr-edge serve: message`, after an ISO time stamp unless journald, which stamps lines itself, is the reader
    ($JOURNAL_STREAM, as systemd sets it); a library's record names the library."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = "" if os.environ.get("JOURNAL_STREAM") else \
            datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds") + " "
        source = "" if record.name == _LOGGER.name else f"{record.name}: "
        return f"{stamp}cxr-edge serve: {source}{record.getMessage()}"


_LOGGER = logging.getLogger("cxr_edge.serve")
_HANDLER = _Stderr()
_HANDLER.setFormatter(_Lines())
_LOGGER.setLevel(logging.INFO)
_LOGGER.addHandler(_HANDLER)
_LOGGER.propagate = False


def route_library_logs() -> None:
    """pynetdicom's warnings and errors (a peer's malformed PDU, an aborted association) in the node's lines: it
    gives its logger only a NullHandler, so they were lost; its INFO chatter stays out."""
    library = logging.getLogger("pynetdicom")
    library.setLevel(logging.WARNING)
    if _HANDLER not in library.handlers:
        library.addHandler(_HANDLER)


def log(message: str) -> None:
    """One line per event on stderr: UIDs and AE titles, never a patient's name or ID."""
    _LOGGER.info(message)


def check_permissions(config: NodeConfig) -> None:
    """Refuse, as ssh does for its keys, what other users could change. With `trusted_keys` in the configuration,
    that folder is the node's trust folder from here on (as $CXR_EDGE_TRUSTED_KEYS would make it)."""
    from cxr_edge.bundle.signature import TRUST_ENV, TrustStore, others_can_write

    if config.trusted_keys is not None:
        os.environ[TRUST_ENV] = str(config.trusted_keys)
    try:
        trust = TrustStore.load().folder
    except (OSError, ValueError) as exc:
        raise StartError(f"the trust folder cannot be read: {exc}") from None
    for path, what in ((config.path, "configuration file"), (trust, "trust folder"), (config.data, "data folder")):
        if others_can_write(path):
            raise StartError(f"{what} {path} can be written by other users: whoever can change it decides what the "
                             f"box runs; fix it with `chmod go-w {path}`")


def open_classifier(config: NodeConfig):
    """The bundle's Classifier with classify's rules; StartError with the reason when it cannot be used."""
    from cxr_edge.bundle.load import BundleError, load_bundle
    from cxr_edge.bundle.selftest import SelfTestError
    from cxr_edge.models.interpreter import NoInterpreterError
    from cxr_edge.run.classify import Classifier
    from cxr_edge.site.site_file import SiteError, load_site

    try:
        bundle = load_bundle(config.model)
        site = load_site(config.site, bundle.manifest_sha256) if config.site else None
        return Classifier(bundle, site=site)
    except (BundleError, SiteError, SelfTestError, NoInterpreterError, ValueError) as exc:
        raise StartError(str(exc)) from None


def active_config(config: NodeConfig) -> NodeConfig:
    """The configuration with the bundle a promotion made active (cxr_edge.node.bundles), said in the log."""
    from cxr_edge.node.bundles import PromotionError, effective

    try:
        active = effective(config)
    except PromotionError as exc:
        raise StartError(str(exc)) from None
    if active.model != config.model:
        log(f"running the promoted bundle {active.model} (data/active.json), not the configuration's model "
            f"{config.model.name}; `cxr-edge candidate rollback` goes back")
    return active


def _shadow_worker(config: NodeConfig, classifier, state):
    """The candidate's thread, or None when there is no usable candidate (the log says why)."""
    if not config.candidate.enabled:
        return None
    from cxr_edge.node.candidate import ShadowWorker, open_candidate

    candidate = open_candidate(config, classifier.bundle.manifest_sha256, log)
    return ShadowWorker(candidate, state, config.candidate.share, log) if candidate is not None else None


def open_state(config: NodeConfig):
    """The database, migrated and seen to take a write: a node that could only read would log "listening" and then
    refuse every image, so it does not start (exit 2) and says what to fix."""
    import sqlite3

    from cxr_edge.node.state import DATABASE, State

    state = None
    try:
        state = State(config.data)
        state.check_writable()
    except (OSError, sqlite3.Error) as exc:
        if state is not None:
            state.close()
        what = f"the database {config.data / DATABASE}" if isinstance(exc, sqlite3.Error) else \
            f"the data folder {config.data}"
        raise StartError(f"{what} cannot be written ({exc}): the node would refuse every image; put the data folder "
                         f"on a writable disk, owned by the user the node runs as, and start again") from None
    return state


def bundle_warnings(classifier) -> list[str]:
    """What every page, `serve --check` and the log at start say about the bundle, one plain sentence each: trained
    on synthetic images, not shown to match its validated model, the self-test's fallback, a trust folder others
    can change, an origin not verified, not calibrated for this clinic (cxr_edge.reports.formats.warnings_of)."""
    from cxr_edge.reports.formats import warnings_of

    return [warning.plain for warning in warnings_of(classifier)]


@dataclass(frozen=True)
class BundleLine:
    """The bundle in a line a clinician reads, under each study on the screen (the operating point is on the status
    page): made in the reader's language each time it is shown."""

    name: str
    calibrated: bool

    def __str__(self) -> str:
        from cxr_edge.language import _

        if self.calibrated:
            return _("%(bundle)s, set for this clinic") % {"bundle": self.name}
        return _("%(bundle)s, not yet set for this clinic") % {"bundle": self.name}


def bundle_line(config: NodeConfig, classifier) -> BundleLine:
    return BundleLine(config.model.name, classifier.site is not None)


def run(config: NodeConfig, stop: threading.Event | None = None, start_web=None) -> None:
    """Serve until SIGTERM or SIGINT (or `stop` is set). `start_web` (cxr_edge.web.server.start_web, given by the
    command line: the screen sits below the node) starts the clinician's screen when [web] is enabled."""
    from cxr_edge.language import set_default

    stop = stop or threading.Event()
    route_library_logs()
    spoken = set_default(config.web.language)  # the node's threads (a heatmap's caption, a stick's report) speak it
    try:
        _run(config, stop, start_web)
    finally:
        set_default(spoken)


def _run(config: NodeConfig, stop: threading.Event, start_web) -> None:
    from cxr_edge.node.receiver import Receiver
    from cxr_edge.node.worker import Worker

    if threading.current_thread() is threading.main_thread():  # installed first: a SIGTERM during start-up too
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    check_permissions(config)
    config = active_config(config)
    _import_decoders(config.send.dicom)
    _few_malloc_arenas()
    classifier = open_classifier(config)
    sticks_classifier = open_classifier(config) if config.usb.enabled else None  # interpreters are per thread
    manifest = classifier.bundle.manifest
    log(f"bundle {config.model.name} (made {manifest.get('created', '?')} by cxr-edge "
        f"{manifest.get('cxr_edge_version', '?')}, {manifest.get('quantization', '?')}): "
        f"{classifier.selftest.summary()}")
    warnings = bundle_warnings(classifier)
    for warning in warnings:
        log(f"WARNING: {warning}")
    token_present(config)
    for warning in send_warnings(config):
        log(f"WARNING: {warning}")
    state = open_state(config)
    sender = publisher = None
    if config.send.enabled:
        from cxr_edge.node.outbox import Publisher
        from cxr_edge.node.sender import Sender

        sender = Sender(config.send, config.dicom.ae_title, state, log)
        publisher = Publisher(config.send, classifier, state, log, config.dicom.min_free_mb)
    worker = Worker(classifier, state, config.dicom.study_stable_seconds, log, publisher,
                    sender.wake if sender else None)
    shadow = _shadow_worker(config, classifier, state)
    sticks = receiver = web = None
    try:
        worker.start()
        if sender is not None:
            sender.start()
            log(f"sending results to {', '.join(_destinations(config))}")
        if shadow is not None:
            shadow.start()
            log(f"candidate {shadow.classifier.bundle.path.name} runs beside the active bundle on "
                f"{config.candidate.share:.0%} of images, when none waits; its results are never shown or sent")
        if sticks_classifier is not None:
            from cxr_edge.node.candidate import stage_from_stick
            from cxr_edge.node.sticks import StickWatcher

            stage = (lambda stick: stage_from_stick(config, stick, log)) if config.candidate.stick_folder else None
            sticks = StickWatcher(config.usb, sticks_classifier, state, log, on_stick=stage)
            sticks.start()
            log(f"watching {config.usb.watch} for sticks")
        if config.dicom.enabled and not stop.is_set():
            receiver = Receiver(config.dicom, state, log, on_stored=worker.wake)
            receiver.start()
            callers = ("any calling AE title (allowed_callers = [\"*\"])" if config.dicom.any_caller
                       else ", ".join(config.dicom.allowed_callers))
            log(f"listening as {config.dicom.ae_title} on {config.dicom.bind}:{config.dicom.port}, accepting "
                f"{callers}")
        if config.web.enabled and start_web is not None and not stop.is_set():
            threads = (worker, sticks, sender, shadow)
            candidate = None
            if config.candidate.enabled:
                from cxr_edge.node.candidate import CandidateStatus

                candidate = CandidateStatus(config, state, classifier, shadow)
            web = start_web(config, state,
                            lambda: node_status(config, state, classifier, receiver, threads, candidate),
                            lambda: open_classifier(config), log, warnings, bundle_line(config, classifier))
        while not stop.wait(0.5):
            for thread in (worker, sticks, sender, shadow, web):
                if thread is not None and not thread.is_alive():
                    raise StartError(f"the {thread.name} thread stopped unexpectedly (its last log line says why)")
    finally:
        log("stopping: closing associations, finishing the image in hand")
        started = time.monotonic()
        if web:
            web.stop()
        if receiver:
            receiver.stop(timeout=8)
        worker.stop()
        for thread in (sticks, sender, shadow):
            if thread:
                thread.stop()
        worker.join(timeout=max(0.1, 9 - (time.monotonic() - started)))
        for thread in (sticks, sender, shadow, web):
            if thread:
                thread.join(timeout=max(0.1, 9 - (time.monotonic() - started)))
        state.close()
        log(f"stopped in {time.monotonic() - started:.1f} s")


def node_status(config: NodeConfig, state, classifier, receiver, threads, candidate=None) -> dict:
    """What the status page and /healthz show: no patient data. Called for each request, in its language."""
    from cxr_edge.language import _

    import shutil

    from cxr_edge.site.site_file import expected_shares, operating_point_line

    origin = classifier.bundle.origin
    expected, source = expected_shares(classifier)
    last = receiver.last_association if receiver else None
    queue = state.queue_length()
    import platform

    from cxr_edge.models.interpreter import backend

    return {"bundle": config.model.name, "signer": origin.summary() if origin else "not checked",
            "interpreter": f"{backend()} on {platform.machine()}",
            "selftest": classifier.selftest.summary(), "selftest_passed": True,  # the node does not start otherwise
            "operating_point": operating_point_line(classifier).removeprefix("operating point: "),
            "site": str(config.site) if config.site else
            _("none: the bundle's threshold, not calibrated for this site"),
            "dicom": {"enabled": config.dicom.enabled, "listening": receiver is not None and receiver.server is not None,
                      "ae_title": config.dicom.ae_title, "bind": config.dicom.bind, "port": config.dicom.port,
                      "last_association": last[0] if last else None},
            "queue": queue, "free_mb": int(shutil.disk_usage(config.data).free / 2**20),
            "outbox": state.outbox(), "stick_runs": state.stick_runs()[-10:],
            "expected": expected, "expected_source": source, "site_calibrated": classifier.site is not None,
            "candidate": candidate() if candidate else None,
            "threads_alive": all(t.is_alive() for t in threads if t is not None)
            and (not config.dicom.enabled or (receiver is not None and receiver.server is not None))}


def token_present(config: NodeConfig) -> None:
    """The FHIR bearer token comes from the environment (systemd: EnvironmentFile=), never from the file."""
    name = config.send.fhir_token_env
    if config.send.fhir_url and name and not os.environ.get(name):
        raise StartError(f"{config.path}: [send] fhir_token_env names {name}, which is not set in the environment: "
                         f"set it where the service starts (systemd: an EnvironmentFile= line), or remove "
                         f"fhir_token_env to send without a token")


def send_warnings(config: NodeConfig) -> list[str]:
    """Patient data over plain HTTP to another machine is readable by anyone on the way."""
    from urllib.parse import urlparse

    url = config.send.fhir_url
    if url.startswith("http://"):
        host = urlparse(url).hostname or ""
        if host not in ("localhost", "127.0.0.1", "::1"):
            return [f"[send] fhir_url {url} is plain HTTP to another machine: patient data goes unencrypted; "
                    "use https://"]
    return []


def _destinations(config: NodeConfig) -> list[str]:
    what = "SR and heatmap" if config.send.heatmap_capture else "SR"
    return [*(f"{peer} (DICOM {what})" for peer in config.send.dicom),
            *([f"{config.send.fhir_url} (FHIR)"] if config.send.fhir_url else [])]


def _import_decoders(writes_dicom: bool) -> None:
    """Import, here and once, what the receiver's and the worker's threads import lazily: two threads importing
    pydicom for the first time at once can see it half initialised (its modules import each other)."""
    import imagecodecs  # noqa: F401
    import pydicom.encaps  # noqa: F401
    import pydicom.pixels  # noqa: F401
    import pynetdicom  # noqa: F401

    if writes_dicom:
        import highdicom  # noqa: F401


def _few_malloc_arenas() -> None:
    """glibc gives each new thread that allocates its own arena, up to 8 per core: with a thread per association,
    the node's memory grew by 38 MB over its first 300 received images before it levelled off (benchmarks.node).
    Two arenas, set before any thread starts, keep it flat (+0.7 MB over 500); not glibc: nothing to do."""
    import ctypes
    import ctypes.util

    M_ARENA_MAX = -8
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass


def _trust_folder(config: NodeConfig) -> str:
    from cxr_edge.bundle.signature import DEFAULT_TRUST_DIR, TRUST_ENV

    return str(config.trusted_keys or os.environ.get(TRUST_ENV) or DEFAULT_TRUST_DIR)


def describe(config: NodeConfig) -> list[str]:
    """The resolved configuration, as `serve --check` prints it."""
    d = config.dicom
    lines = [f"configuration: {config.path}", f"model: {config.model}", f"data: {config.data}",
             f"site: {config.site or 'none (the bundle threshold: not calibrated for this site)'}",
             f"trusted keys: {_trust_folder(config)}"]
    if d.enabled:
        callers = 'any (["*"]): every calling AE title is accepted' if d.any_caller else ", ".join(d.allowed_callers)
        lines += [f"dicom: {d.ae_title} on {d.bind}:{d.port}; allowed callers: {callers}; study stable after "
                  f"{d.study_stable_seconds:g} s; new images refused below {d.min_free_mb} MB free"]
    else:
        lines.append("dicom: disabled")
    lines.append(f"usb: {'watching ' + config.usb.watch if config.usb.enabled else 'disabled'}")
    if config.send.enabled:
        token = f"; bearer token from ${config.send.fhir_token_env}" if config.send.fhir_token_env else ""
        lines.append(f"send: {', '.join(_destinations(config))}{token}; retried from "
                     f"{config.send.retry_first_seconds:g} s up to {config.send.retry_max_seconds:g} s")
    else:
        lines.append("send: nothing (no [send] destinations)")
    w = config.web
    lines.append(f"web: {'https' if w.tls else 'http'}://{w.bind}:{w.port}/" if w.enabled else "web: disabled")
    c = config.candidate
    if c.enabled:
        source = str(c.model) if c.model else f"a signed bundle in the folder {c.stick_folder} of a stick"
        lines.append(f"candidate: {source}, on {c.share:.0%} of images; margins: sensitivity "
                     f"{c.max_sensitivity_drop:g}, specificity {c.max_specificity_drop:g}, agreement with readers "
                     f"{c.max_accuracy_drop:g}")
    else:
        lines.append("candidate: none")
    return lines
