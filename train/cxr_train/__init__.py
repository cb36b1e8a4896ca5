"""cxr_train: Keras training, evaluation, the data set reader and the synthetic chest X-ray generator."""

from cxr_edge import __version__

__all__ = ["__version__"]
