"""Training-side commands print their own progress; TensorFlow's, XLA's, absl's and JAX's start-up chatter
(oneDNN notices, "failed call to cuInit" on machines without a GPU, SavedModel loader lines, tf.function
retracing notes) stays out of the way unless --verbose asks for it. Real warnings and errors still show:
only lines known to say nothing to the user are dropped.

The C++ side writes to file descriptors 2 (and 1) directly, before TensorFlow's own TF_CPP_MIN_LOG_LEVEL
applies ("All log messages before absl::InitializeLog() is called are written to STDERR"), so the filter
sits on those descriptors; Python's loggers get a logging.Filter.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

# Lines that say nothing to a user (each checked against a whole line of stderr).
NATIVE_NOISE = re.compile("|".join([
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"I\d{4} [\d:.]+\s+\d+ \S+:\d+\] .*",  # absl INFO lines (oneDNN, cuda stubs, SavedModel loader)
    r"E\d{4} [\d:.]+\s+\d+ \S+:\d+\] failed call to cuInit: .*",  # a machine without a GPU driver: not an error for CPU training
    r"E\d{4} [\d:.]+\s+\d+ \S+:\d+\] Unable to register cu(DNN|FFT|BLAS) factory: .*",
    r"W\d{4} [\d:.]+\s+\d+ \S+:\d+\] TF-TRT Warning: Could not find TensorRT",
    r"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.",
    r"\[Gloo\] Rank \d+ is connected to \d+ peer ranks\. .*",
    r"fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+",  # TFLite
]))

# Python log records that say nothing to a user, by message.
PYTHON_NOISE = re.compile("|".join([
    r".*triggered tf\.function retracing.*",
    r"AutoGraph could not transform .*",
    r"Compiled the loaded model, but the compiled metrics have yet to be built.*",
]), re.DOTALL)

_installed = False


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not PYTHON_NOISE.fullmatch(record.getMessage())


def quiet(verbose: bool) -> None:
    """Hide the known noise for the rest of the process, unless `verbose`. Safe to call more than once."""
    global _installed
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # over cxr_train's default of 2 (the converter's W lines)
        return
    if _installed:
        return
    _installed = True
    for name in ("tensorflow", "absl"):  # the loggers these records come from (a filter binds to one logger)
        logging.getLogger(name).addFilter(_DropNoise())
    _filter_native_output()


def _filter_native_output() -> None:
    """Both descriptors: absl writes to 2, Gloo's connection notice goes to 1."""
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a real stream (a test runner's capture): leave it
            continue
        if fd in (1, 2):
            _filter_fd(fd, stream)


def _filter_fd(fd: int, stream) -> None:
    stream.flush()
    original = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)
    forwarder = threading.Thread(target=_forward, args=(read_end, original), daemon=True)
    forwarder.start()

    def stop() -> None:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, fd)  # closes the pipe's last write end: the forwarder reads to the end and stops
        forwarder.join(timeout=5)

    atexit.register(stop)


def _forward(read_end: int, original: int) -> None:
    with os.fdopen(read_end, "rb") as lines:
        for line in lines:
            if not NATIVE_NOISE.fullmatch(line.decode("utf-8", "replace").rstrip("\r\n")):
                os.write(original, line)
