"""cxr_train: Keras training, evaluation, the data set reader and the synthetic chest X-ray generator."""

import os

# A default only: KERAS_BACKEND=jax, or `cxr-train fit --backend jax`, trains on JAX (README, "Training on
# several GPUs or machines"). TensorFlow's log level is set by cxr_train.logs.quiet (-v/--verbose).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from cxr_edge import __version__  # noqa: E402

__all__ = ["__version__"]
