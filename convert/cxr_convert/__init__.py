"""cxr_convert: TFLite conversion with a float-vs-quantized parity gate, and the deployable bundle."""

from cxr_edge import __version__

__all__ = ["__version__"]
