"""cxr_convert: TFLite conversion with a float-vs-quantized parity gate, and the deployable bundle."""

import os

# Conversion runs on TensorFlow (the TFLite converter), whichever backend trained the models: a .keras file
# saved on JAX loads on TensorFlow. Set before anything imports Keras, over a KERAS_BACKEND=jax left from training.
os.environ["KERAS_BACKEND"] = "tensorflow"

from cxr_edge import __version__  # noqa: E402

__all__ = ["__version__"]
