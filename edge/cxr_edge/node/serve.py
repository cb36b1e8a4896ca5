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

import signal
import sys
import threading
import time

from cxr_edge.node.config import NodeConfig


class StartError(RuntimeError):
    """The node cannot start: the message names the file or folder and the fix."""


def log(message: str) -> None:
    """One line per event on stderr, for journald: UIDs and AE titles, never a patient's name or ID."""
    print(f"cxr-edge serve: {message}", file=sys.stderr, flush=True)


def check_permissions(config: NodeConfig) -> None:
    """Refuse, as ssh does for its keys, what other users could change."""
    from cxr_edge.bundle.signature import TrustStore, others_can_write

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


def run(config: NodeConfig, stop: threading.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT (or `stop` is set)."""
    from cxr_edge.node.receiver import Receiver
    from cxr_edge.node.state import State
    from cxr_edge.node.worker import Worker

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():  # installed first: a SIGTERM during start-up too
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    check_permissions(config)
    _import_decoders()
    _few_malloc_arenas()
    classifier = open_classifier(config)
    sticks_classifier = open_classifier(config) if config.usb.enabled else None  # interpreters are per thread
    log(f"bundle {config.model.name}: {classifier.selftest.summary()}")
    state = State(config.data)
    worker, sticks, receiver = Worker(classifier, state, config.dicom.study_stable_seconds, log), None, None
    try:
        worker.start()
        if sticks_classifier is not None:
            from cxr_edge.node.sticks import StickWatcher

            sticks = StickWatcher(config.usb, sticks_classifier, state, log)
            sticks.start()
            log(f"watching {config.usb.watch} for sticks")
        if config.dicom.enabled and not stop.is_set():
            receiver = Receiver(config.dicom, state, log, on_stored=worker.wake)
            receiver.start()
            callers = ("any calling AE title (allowed_callers = [\"*\"])" if config.dicom.any_caller
                       else ", ".join(config.dicom.allowed_callers))
            log(f"listening as {config.dicom.ae_title} on {config.dicom.bind}:{config.dicom.port}, accepting "
                f"{callers}")
        while not stop.wait(0.5):
            for thread in (worker, sticks):
                if thread is not None and not thread.is_alive():
                    raise StartError(f"the {thread.name} thread stopped unexpectedly (its last log line says why)")
    finally:
        log("stopping: closing associations, finishing the image in hand")
        started = time.monotonic()
        if receiver:
            receiver.stop(timeout=8)
        worker.stop()
        if sticks:
            sticks.stop()
        worker.join(timeout=max(0.1, 9 - (time.monotonic() - started)))
        if sticks:
            sticks.join(timeout=max(0.1, 9 - (time.monotonic() - started)))
        state.close()
        log(f"stopped in {time.monotonic() - started:.1f} s")


def _import_decoders() -> None:
    """Import, here and once, what the receiver's and the worker's threads import lazily: two threads importing
    pydicom for the first time at once can see it half initialised (its modules import each other)."""
    import imagecodecs  # noqa: F401
    import pydicom.encaps  # noqa: F401
    import pydicom.pixels  # noqa: F401
    import pynetdicom  # noqa: F401


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


def describe(config: NodeConfig) -> list[str]:
    """The resolved configuration, as `serve --check` prints it."""
    d = config.dicom
    lines = [f"configuration: {config.path}", f"model: {config.model}", f"data: {config.data}",
             f"site: {config.site or 'none (the bundle threshold: not calibrated for this site)'}"]
    if d.enabled:
        callers = 'any (["*"]): every calling AE title is accepted' if d.any_caller else ", ".join(d.allowed_callers)
        lines += [f"dicom: {d.ae_title} on {d.bind}:{d.port}; allowed callers: {callers}; study stable after "
                  f"{d.study_stable_seconds:g} s; new images refused below {d.min_free_mb} MB free"]
    else:
        lines.append("dicom: disabled")
    lines.append(f"usb: {'watching ' + config.usb.watch if config.usb.enabled else 'disabled'}")
    return lines
