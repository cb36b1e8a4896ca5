"""Training images/s of each preset on a GPU machine that has Keras 3 and JAX but no TensorFlow.

The project's trainer needs TensorFlow (tf.data, tf.distribute, TFLite export); this measures only the model's
training step, through Keras 3 on the JAX backend with the project's own model builder, random pixels and
fit() from numpy arrays, after one warm-up fit that compiles. A proxy for GPU speed, not the trainer's figure.

Run (on the GPU machine, from the repository root): KERAS_BACKEND=jax python3 benchmarks/gpu_training.py
"""

import importlib.util
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def load_alexnet_module():
    """train/cxr_train/alexnet.py on its own: the cxr_train package would import TensorFlow-only parts."""
    spec = importlib.util.spec_from_file_location("alexnet", "train/cxr_train/alexnet.py")
    module = sys.modules["alexnet"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    alexnet = load_alexnet_module()
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}", flush=True)
    rng = np.random.default_rng(0)
    for preset in ("alexnet", "alexnet-edge", "tiny"):
        size = alexnet.PRESETS[preset].image_size
        for batch in (32, 128):
            keras.utils.set_random_seed(0)
            model = alexnet.build_model(preset, 3)
            model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
            n = batch * 60
            x = rng.integers(0, 256, (n, size, size, 1)).astype("float32")
            y = rng.integers(0, 3, n)
            start = time.perf_counter()
            model.fit(x[:batch * 4], y[:batch * 4], batch_size=batch, epochs=1, verbose=0)
            warm = time.perf_counter() - start
            start = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            seconds = time.perf_counter() - start
            print(f"{preset:13s} batch {batch:4d}: {n / seconds:8.1f} images/s ({n} images in {seconds:.2f} s; "
                  f"first fit incl. compile {warm:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
