"""cxr-edge: the slim chest X-ray pre-diagnosis runtime for clinic boxes.

This package needs numpy, Pillow, click and a TFLite interpreter only. It never imports TensorFlow or
Keras: training (`cxr_train`) and conversion (`cxr_convert`) import it, never the other way round.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxr-edge")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

DISCLAIMER = "Pre-diagnosis aid, not a diagnosis: a clinician must review every result."
