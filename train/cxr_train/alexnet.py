"""AlexNet-style models for both cascade stages: a small table of presets and one builder.

The trunk follows Krizhevsky et al. (2012): conv 96 11x11/4, max-pool 3/2, conv 256 5x5 (2 groups),
max-pool, conv 384 3x3, conv 384 3x3 (2 groups), conv 256 3x3 (2 groups), max-pool, with BatchNorm where
the original had local response normalisation (placed before the ReLU, so that TFLite folds it into the
convolution and int8 quantization sees one op). Inputs are one grayscale channel of raw uint8 pixels
(as float32 values 0..255); the model rescales them itself, so TFLite models carry the scaling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
from keras import layers

TRUNK_LAYERS = ("conv1", "bn1", "conv2", "bn2", "conv3", "conv4", "conv5")


@dataclass(frozen=True)
class Preset:
    image_size: int
    filters: tuple[int, int, int, int, int]  # conv1..conv5
    conv1_kernel: int
    conv1_stride: int
    dense: tuple[int, ...]  # hidden dense layers of the head (fc6, fc7, ...)
    global_pool: bool  # global average pooling (small head) instead of flatten
    dropout: float
    learning_rate: float  # default for --learning-rate


PRESETS = {
    # The faithful architecture: about 57 M weights, flatten into fc6/fc7 of 4096.
    "alexnet": Preset(227, (96, 256, 384, 384, 256), 11, 4, (4096, 4096), False, 0.5, 1e-4),
    # Same trunk, a head sized for a Raspberry Pi-class box: about 2.4 M weights.
    "alexnet-edge": Preset(227, (96, 256, 384, 384, 256), 11, 4, (256,), True, 0.5, 1e-4),
    # Narrow and small-input, for tests and the demo.
    "tiny": Preset(64, (16, 32, 48, 48, 32), 5, 2, (32,), True, 0.3, 2e-3),
}


def preset_config(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return asdict(PRESETS[name])


def build_model(preset: str, num_classes: int, image_size: int | None = None, name: str = "model") -> keras.Model:
    """An AlexNet-style classifier: (size, size, 1) raw pixels in, softmax over `num_classes` out.

    Layers are named as in the original (conv1..conv5, fc6, fc7) so that pre-trained weights load by name;
    the penultimate layer is `features` and the head is `logits`/`probs`.
    """
    p = PRESETS[preset] if preset in PRESETS else None
    if p is None:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    size = image_size or p.image_size
    f1, f2, f3, f4, f5 = p.filters
    inputs = keras.Input((size, size, 1), name="pixels")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = layers.Conv2D(f1, p.conv1_kernel, strides=p.conv1_stride, name="conv1")(x)
    x = layers.ReLU(name="relu1")(layers.BatchNormalization(momentum=0.9, name="bn1")(x))
    x = layers.MaxPooling2D(3, 2, name="pool1")(x)
    x = layers.Conv2D(f2, 5, padding="same", groups=2, name="conv2")(x)
    x = layers.ReLU(name="relu2")(layers.BatchNormalization(momentum=0.9, name="bn2")(x))
    x = layers.MaxPooling2D(3, 2, name="pool2")(x)
    x = layers.Conv2D(f3, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(f4, 3, padding="same", groups=2, activation="relu", name="conv4")(x)
    x = layers.Conv2D(f5, 3, padding="same", groups=2, activation="relu", name="conv5")(x)
    x = layers.MaxPooling2D(3, 2, name="pool5")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x) if p.global_pool else layers.Flatten(name="flatten")(x)
    for i, units in enumerate(p.dense):
        x = layers.Dense(units, activation="relu", name=f"fc{6 + i}")(x)
        x = layers.Dropout(p.dropout, name=f"drop{6 + i}")(x)
    x = layers.Identity(name="features")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Activation("softmax", name="probs", dtype="float32")(logits)
    return keras.Model(inputs, outputs, name=name)
