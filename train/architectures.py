"""The network architectures, in one registry, so variants can be compared by name.

Every model takes (S, S, 1) float pixels in 0..255 (the preprocessing contract of
emocam.edge.vision.preprocess) and normalizes inside, so the int8 model's input quantization is exact
(scale 1, zero point -128). Each returns softmax probabilities from a float32 layer, so a model
trained with mixed precision still ends in a float32 softmax.

Two head styles:
- ``flatten`` (vgg-s/m/l, v1's family): fixed input size, the classifier sees every position.
- ``pool`` (global average pooling: vgg-m-pool, resnet18-n): any input size, so a network can be
  trained on random 40x40 crops (about 1.45x cheaper per step) and scored on the full 48x48 face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Keras is imported where a network is built: the names and checks need none
    import keras


@dataclass(frozen=True, slots=True)
class VggSpec:
    widths: tuple[int, ...]  # channels of each block; each block halves the resolution
    convs_per_block: int = 2
    dense: int = 256
    dropout: float = 0.4
    pool_head: bool = False  # global average pooling after the last block instead of flatten


@dataclass(frozen=True, slots=True)
class ResNetSpec:
    widths: tuple[int, ...]  # channels of each stage; every stage after the first halves the resolution
    blocks_per_stage: int = 2  # ResNet-18 has 2 basic blocks in each of 4 stages
    dropout: float = 0.3


def _conv_bn_relu(x, filters: int, strides: int = 1):
    from keras import layers

    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, kernel_initializer="he_normal")(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def _probabilities(x, classes: int):
    from keras import layers

    # float32 even under a mixed_bfloat16 policy: a bf16 softmax rounds small probabilities away.
    return layers.Dense(classes, activation="softmax", dtype="float32", name="probabilities")(x)


def _input(input_size: int | None) -> keras.KerasTensor:
    import keras

    return keras.Input((input_size, input_size, 1), name="pixels")


def vgg(spec: VggSpec, input_size: int | None, classes: int, name: str) -> keras.Model:
    """VGG-style CNN with batch norm: the family that holds the FER-2013 single-network records."""
    import keras
    from keras import layers

    if input_size is None and not spec.pool_head:
        raise ValueError(f"{name} has a flatten head and needs a fixed input size")
    inputs = _input(input_size)
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for block, width in enumerate(spec.widths):
        for _ in range(spec.convs_per_block):
            x = _conv_bn_relu(x, width)
        last = block == len(spec.widths) - 1
        if not (last and spec.pool_head):  # a pooled head averages the last block's map instead
            x = layers.MaxPooling2D()(x)
        if block >= 1:
            x = layers.SpatialDropout2D(0.1)(x)
    x = layers.GlobalAveragePooling2D()(x) if spec.pool_head else layers.Flatten()(x)
    x = layers.Dense(spec.dense, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(spec.dropout)(x)
    return keras.Model(inputs, _probabilities(x, classes), name=name)


def _basic_block(x, filters: int, strides: int):
    from keras import layers

    shortcut = x
    y = _conv_bn_relu(x, filters, strides)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal")(y)
    # Zero-initialised last BN: each block starts as the identity, which trains deep nets faster.
    y = layers.BatchNormalization(gamma_initializer="zeros")(y)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, kernel_initializer="he_normal")(shortcut)
        shortcut = layers.BatchNormalization()(shortcut)
    return layers.ReLU()(layers.Add()([shortcut, y]))


def resnet(spec: ResNetSpec, input_size: int | None, classes: int, name: str) -> keras.Model:
    """A narrow ResNet-18 for 40-48 px faces: a 3x3 stem at full resolution, no stem pooling."""
    import keras
    from keras import layers

    inputs = _input(input_size)
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = _conv_bn_relu(x, spec.widths[0])
    for stage, width in enumerate(spec.widths):
        for block in range(spec.blocks_per_stage):
            x = _basic_block(x, width, 2 if stage > 0 and block == 0 else 1)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(spec.dropout)(x)
    return keras.Model(inputs, _probabilities(x, classes), name=name)


@dataclass(frozen=True, slots=True)
class Architecture:
    """One entry of the registry: its spec, and what it is in one line."""

    spec: VggSpec | ResNetSpec
    description: str

    @property
    def pooling_head(self) -> bool:
        """Whether the network accepts inputs of any size (so it can be trained on crops)."""
        return isinstance(self.spec, ResNetSpec) or self.spec.pool_head

    def build(self, name: str, input_size: int | None, classes: int) -> keras.Model:
        if isinstance(self.spec, ResNetSpec):
            return resnet(self.spec, input_size, classes, name)
        return vgg(self.spec, input_size, classes, name)


# name -> architecture; MACs are for one 48x48 face. The default is sized for a Raspberry Pi 4.
ARCHITECTURES: dict[str, Architecture] = {
    "vgg-s": Architecture(VggSpec((32, 64, 128, 256)), "4 blocks 32-256, flatten head: 1.77M params, 118M MACs"),
    "vgg-m": Architecture(VggSpec((48, 96, 192, 384)), "4 blocks 48-384, flatten head: 3.53M params, 265M MACs"),
    "vgg-l": Architecture(VggSpec((64, 128, 256, 512)), "4 blocks 64-512, flatten head: 5.87M params, 470M MACs"),
    "vgg-m-pool": Architecture(
        VggSpec((48, 96, 192, 384), pool_head=True),
        "4 blocks 48-384, pooling head (crop training): 2.74M params, 264M MACs",
    ),
    "resnet18-n": Architecture(
        ResNetSpec((24, 48, 96, 192)),
        "ResNet-18 at 3/8 width (24-192), pooling head (crop training): 1.58M params, 176M MACs",
    ),
    "tiny": Architecture(VggSpec((8, 16), 1, 32, 0.2), "for tests and smoke runs only"),
    "tiny-pool": Architecture(VggSpec((8, 16), 1, 32, 0.2, pool_head=True), "for tests and smoke runs only"),
    "tiny-res": Architecture(ResNetSpec((8, 16), 1), "for tests and smoke runs only"),
}
DEFAULT_ARCHITECTURE = "vgg-m"


def describe_choices() -> str:
    return "; ".join(f"{name}: {entry.description}" for name, entry in ARCHITECTURES.items())


def _entry(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture {name!r} is unknown; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def build(name: str, input_size: int | None, classes: int) -> keras.Model:
    """``input_size`` None makes a pooling-head network that accepts any size (crop training)."""
    return _entry(name).build(name, input_size, classes)


def has_pooling_head(name: str) -> bool:
    """Whether the network accepts inputs of any size (so it can be trained on crops)."""
    return _entry(name).pooling_head


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one inference (convolutions and dense layers; the rest is noise)."""
    from keras import layers

    total = 0
    for layer in leaf_layers(model):
        if isinstance(layer, layers.Conv2D):
            _, height, width, out_channels = layer.output.shape
            in_channels = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += height * width * out_channels * in_channels * kh * kw
        elif isinstance(layer, layers.Dense):
            total += int(layer.input.shape[-1]) * layer.units
    return int(total)


def leaf_layers(model: keras.Model):
    """Every layer of ``model`` in order, nested models (a centre crop's wrapped net) opened up."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def with_centre_crop(model: keras.Model, crop: int) -> keras.Model:
    """The same network scoring only the central ``crop`` x ``crop`` pixels of each face.

    A pooling-head network trained on random crops can be scored on the whole face or on its
    centre; validation decides. The result still takes the full face, so the preprocessing
    contract and the device code do not change, and it costs (crop / size)^2 of the MACs.
    """
    import keras
    from keras import layers

    size = int(model.inputs[0].shape[1])
    if not 8 <= crop < size:
        raise ValueError(f"centre crop {crop} must be from 8 to {size - 1} for {size}x{size} faces")
    try:
        cropped = keras.models.clone_model(model, input_tensors=keras.Input((crop, crop, 1), name="centre"))
        cropped.set_weights(model.get_weights())
    except ValueError as exc:  # a flatten head's dense layer cannot take a smaller map
        raise ValueError(f"{model.name} cannot score a {crop}x{crop} centre crop ({exc}); only pooling-head "
                         "networks can (vgg-m-pool, resnet18-n)") from exc
    inputs = keras.Input((size, size, 1), name="pixels")
    outputs = cropped(layers.CenterCrop(crop, crop, name="centre_crop")(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_centre{crop}")
