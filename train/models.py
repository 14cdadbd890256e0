"""The two small CNNs: ``focus_net`` (blur class + blur size) and ``defect_net`` (defect heatmap).

The names and shapes here are a contract with ``convert/`` and the device runtime:

focus_net
    input  ``tile``    (FOCUS_TILE, FOCUS_TILE, 1) float32, from
           ``device.common.preprocess.normalize_focus_tiles`` (per-tile zero mean, unit std).
    output ``probs``   (3,) softmax over ``FOCUS_CLASSES`` = (sharp, defocus, motion).
    output ``blur_px`` (1,) linear: blur size in pixels of the working (lores) frame.
           Defocus: the disc (pillbox) radius. Motion: half the length of the blur
           trajectory (so a line of length 2r and a disc of radius r both score r). Sharp: 0.

defect_net
    input  ``tile``    (DEFECT_TILE, DEFECT_TILE, 3) float32 BGR in [0, 1], from
           ``device.common.preprocess.normalize_defect_tiles``.
    output ``heatmap`` (DEFECT_TILE, DEFECT_TILE, len(DEFECT_KINDS)) sigmoid; channel k is the
           probability that a defect of kind ``DEFECT_KINDS[k]`` (dead, hot, stuck) sits at
           that pixel. Fully convolutional, full resolution: no pooling, so peaks localise.

Both use depthwise-separable convolutions, batch norm (folded away on conversion) and ReLU,
and no large dense layers, so each is a few tens of KiB after int8 quantisation.
"""
from __future__ import annotations

import keras
from keras import layers

from device.common.preprocess import DEFECT_KINDS, DEFECT_TILE, FOCUS_CLASSES, FOCUS_TILE

# Batch-norm running statistics must keep up with the weights during short CPU runs at a
# high learning rate; with Keras' default 0.99 they lag so far that inference-mode
# outputs collapse to one class while training-mode outputs are right.
BN_MOMENTUM = 0.9


def _conv_bn(x, filters, kernel=3, strides=1, name=None):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _sep_bn(x, filters, strides=1, dilation=1, name=None):
    """Depthwise 3x3 + BN + ReLU, then pointwise 1x1 + BN + ReLU (MobileNet block)."""
    x = layers.DepthwiseConv2D(3, strides=strides, dilation_rate=dilation, padding="same",
                               use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_pw_bn")(x)
    return layers.ReLU(name=f"{name}_pw_relu")(x)


def build_focus_net(width: float = 1.0, tile: int = FOCUS_TILE) -> keras.Model:
    """The focus classifier + blur-size regressor (see the module docstring for the contract).

    ``width`` scales every channel count (1.0 is the shipped size: ~16k parameters,
    ~1 M multiply-adds per 64x64 tile). An early stride-2 convolution keeps the
    per-tile cost low; four stride-2 stages reach a 4x4 map before global pooling.
    """
    def c(n):
        return max(4, int(round(n * width)))

    inp = keras.Input((tile, tile, 1), name="tile", dtype="float32")
    x = _conv_bn(inp, c(8), strides=2, name="stem")           # 32x32: the early stride
    x = _sep_bn(x, c(16), name="b1")                           # 32x32, fine detail
    x = _sep_bn(x, c(24), strides=2, name="b2")               # 16x16
    x = _sep_bn(x, c(24), name="b3")
    x = _sep_bn(x, c(48), strides=2, name="b4")               # 8x8
    x = _sep_bn(x, c(48), name="b5")
    x = _sep_bn(x, c(96), strides=2, name="b6")               # 4x4
    feat = layers.GlobalAveragePooling2D(name="gap")(x)
    h = layers.Dense(c(32), activation="relu", name="head")(feat)
    probs = layers.Dense(len(FOCUS_CLASSES), activation="softmax", name="probs")(h)
    blur = layers.Dense(1, name="blur_px")(h)
    return keras.Model(inp, [probs, blur], name="focus_net")


def build_defect_net(width: float = 1.0, tile: int = DEFECT_TILE) -> keras.Model:
    """The pixel-defect heatmap net (see the module docstring for the contract).

    Full resolution throughout; dilated depthwise convolutions give a ~19 px receptive
    field (enough to see the local background around a demosaiced, JPEG'd blob) at a
    few thousand parameters. Defect-free pixels should score near 0.
    """
    def c(n):
        return max(4, int(round(n * width)))

    inp = keras.Input((tile, tile, 3), name="tile", dtype="float32")
    # 16/24 channels: a 12/16-channel version plateaued at recall 0.19 at 1 FP/MP. Width 2
    # (12.6k parameters, plus a loss term on the max over kinds) reached 0.22 vs 0.15 on
    # the blind split, but inside the device's combined score on the real photos of
    # bench_defects.py its recall at 3 false/MP fell from 0.51 to 0.38: not shipped.
    x = _conv_bn(inp, c(16), name="stem")
    x = _sep_bn(x, c(24), name="b1")
    y = _sep_bn(x, c(24), dilation=2, name="b2")
    x = layers.Add(name="b2_add")([x, y])
    y = _sep_bn(x, c(24), dilation=4, name="b3")
    x = layers.Add(name="b3_add")([x, y])
    x = _sep_bn(x, c(24), name="b4")
    heat = layers.Conv2D(len(DEFECT_KINDS), 1, activation="sigmoid", name="heatmap")(x)
    return keras.Model(inp, heat, name="defect_net")
