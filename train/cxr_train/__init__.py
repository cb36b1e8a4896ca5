"""cxr_train: Keras training, evaluation, the data set reader and the synthetic chest X-ray generator."""

import os

# Defaults only: KERAS_BACKEND=jax, or `cxr-train fit --backend jax`, trains on JAX (docs/training.md, "Training on
# several GPUs or machines"); -v/--verbose (cxr_train.logs.quiet) lowers TensorFlow's log level to 0.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cxr_edge import __version__  # noqa: E402

__all__ = ["__version__"]
