"""cxr-edge: the slim chest X-ray pre-diagnosis runtime for clinic boxes.

This package needs numpy, Pillow, click and a TFLite interpreter only. It never imports TensorFlow or
Keras: training (`cxr_train`) and conversion (`cxr_convert`) import it, never the other way round.
Its subpackages follow the path an image takes (edge/README.md has the map); the names below are the
public API, imported on first use so that `import cxr_edge` stays cheap.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxr-edge")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

from cxr_edge.language import N_

# In English, as the codes are; shown in the reader's language with cxr_edge.language._ (notice()).
DISCLAIMER = N_("Pre-diagnosis aid, not a diagnosis: a clinician must review every result.")


def notice() -> str:
    """The not-a-diagnosis notice in the current language."""
    from cxr_edge.language import _

    return _(DISCLAIMER)

_API = {
    "LABELS": "cxr_edge.labels",
    "load_image": "cxr_edge.inputs.images",  # the image contract, written once
    "prepare": "cxr_edge.inputs.images",
    "to_model_input": "cxr_edge.inputs.images",
    "ImageError": "cxr_edge.inputs.images",
    "IMAGE_CONTRACT_VERSION": "cxr_edge.inputs.images",
    "TFLiteModel": "cxr_edge.models.interpreter",
    "combine": "cxr_edge.models.cascade",
    "load_bundle": "cxr_edge.bundle.load",
    "BundleError": "cxr_edge.bundle.files",
    "Classifier": "cxr_edge.run.classify",
    "run_folder": "cxr_edge.run.classify",
}
__all__ = ["DISCLAIMER", "notice", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'cxr_edge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
