"""The network architectures, in one registry, so variants can be compared by name.

Every model takes (48, 48, 1) float pixels in 0..255 (the preprocessing contract of
edge.preprocess) and normalizes inside, so the int8 model's input quantization is exact
(scale 1, zero point -128). Each returns softmax probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers


@dataclass(frozen=True, slots=True)
class VggSpec:
    widths: tuple[int, ...]  # channels of each block; each block halves the resolution
    convs_per_block: int = 2
    dense: int = 256
    dropout: float = 0.4


def _conv_bn_relu(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal")(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def vgg(spec: VggSpec, input_size: int, classes: int, name: str) -> keras.Model:
    """VGG-style CNN with batch norm: the family that holds the FER-2013 single-network records."""
    inputs = keras.Input((input_size, input_size, 1), name="pixels")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for block, width in enumerate(spec.widths):
        for _ in range(spec.convs_per_block):
            x = _conv_bn_relu(x, width)
        x = layers.MaxPooling2D()(x)
        if block >= 1:
            x = layers.SpatialDropout2D(0.1)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(spec.dense, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(spec.dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


# name -> (builder, one-line description). The default is sized for a Raspberry Pi 4.
ARCHITECTURES: dict[str, tuple[Callable[[int, int], keras.Model], str]] = {
    "vgg-s": (lambda size, n: vgg(VggSpec((32, 64, 128, 256)), size, n, "vgg-s"), "4 blocks 32-256: 1.77M params, 118M MACs"),
    "vgg-m": (lambda size, n: vgg(VggSpec((48, 96, 192, 384)), size, n, "vgg-m"), "4 blocks 48-384: 3.53M params, 265M MACs"),
    "vgg-l": (lambda size, n: vgg(VggSpec((64, 128, 256, 512)), size, n, "vgg-l"), "4 blocks 64-512: 5.87M params, 470M MACs"),
    "tiny": (lambda size, n: vgg(VggSpec((8, 16), 1, 32, 0.2), size, n, "tiny"), "for tests and smoke runs only"),
}
DEFAULT_ARCHITECTURE = "vgg-m"


def build(name: str, input_size: int, classes: int) -> keras.Model:
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture {name!r} is unknown; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name][0](input_size, classes)


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one inference (convolutions and dense layers; the rest is noise)."""
    total = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, layers.Conv2D):
            _, height, width, out_channels = layer.output.shape
            in_channels = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += height * width * out_channels * in_channels * kh * kw
        elif isinstance(layer, layers.Dense):
            total += int(layer.input.shape[-1]) * layer.units
    return int(total)


def _leaf_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer
