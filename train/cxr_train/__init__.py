"""cxr_train: Keras training, evaluation, the data set reader and the synthetic chest X-ray generator."""

import os

# Defaults only: a user's own settings win. Keras 3 must use TensorFlow (tf.distribute, TFLite export).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cxr_edge import __version__  # noqa: E402

__all__ = ["__version__"]
