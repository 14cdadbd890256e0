"""Keras -> TFLite with named presets; int8 is full-integer post-training quantization.

Quantization-aware training does not support Keras 3, so int8 is post-training: the
converter calibrates activation ranges on representative inputs produced by
``train.data.representative_inputs`` (the one copy of the preprocessing). When full int8
misses the parity gate, ``convert_mixed`` keeps the layers with the worst quantization
error in float (TFLite's QuantizationDebugger "selective quantization") instead of
skipping the check.
"""
from __future__ import annotations

import csv
import io
from typing import Callable, Iterable, Sequence

import numpy as np

PRESETS: tuple[str, ...] = ("int8", "float16", "float32")


def _tf():
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    return tf


def _rep_fn(rep: np.ndarray) -> Callable[[], Iterable[list]]:
    rep = np.asarray(rep, np.float32)

    def gen():
        for i in range(len(rep)):
            yield [rep[i:i + 1]]
    return gen


def static_batch(model):
    """The same network (same weights) with a batch-1 input signature.

    With an unknown batch size the converter cannot fold a dilated depthwise convolution
    back into one op: TensorFlow lowers it to SpaceToBatchND -> DepthwiseConv2D ->
    BatchToSpaceND, and with the batch dimension unknown the TFLite pass that rebuilds
    the dilated op gives up, leaving the BatchNorm unfolded (MUL + ADD) and the
    space/batch shuffles outside XNNPACK, which splits the graph into five delegate
    partitions. The defect net's dilated blocks ran ~2x slower in float32 and ~1.3x
    in int8 that way. The runtime still batches tiles with ``resize_tensor_input``.
    """
    import keras

    inp = keras.Input(tuple(model.input_shape[1:]), batch_size=1, name=model.inputs[0].name)
    return keras.Model(inp, model(inp), name=model.name)


def make_converter(model, preset: str, rep: np.ndarray | None = None, int8_io: bool = True):
    tf = _tf()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    conv = tf.lite.TFLiteConverter.from_keras_model(static_batch(model))
    if preset == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif preset == "int8":
        if rep is None or len(rep) == 0:
            raise ValueError("int8 needs representative inputs")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = _rep_fn(rep)
        if int8_io:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv


def convert(model, preset: str, rep: np.ndarray | None = None) -> bytes:
    """One conversion with a named preset; returns the .tflite flatbuffer."""
    return make_converter(model, preset, rep).convert()


def layer_errors(model, rep: np.ndarray) -> list[tuple[str, float]]:
    """Quantized tensors ranked by RMSE / scale (worst first), from the QuantizationDebugger.

    RMSE measured in units of the tensor's own quantization step: a layer far above
    ~0.3 loses information to int8 and is a candidate to keep in float.
    """
    tf = _tf()
    conv = make_converter(model, "int8", rep, int8_io=False)
    dbg = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=_rep_fn(rep))
    dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    rows = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        try:
            scale = float(r["scale"])
            mse = float(r["mean_squared_error"])
        except (KeyError, ValueError):
            continue
        if scale > 0:
            rows.append((r["tensor_name"], float(np.sqrt(mse) / scale)))
    rows.sort(key=lambda t: -t[1])
    return rows


def convert_mixed(model, rep: np.ndarray, denylist: Sequence[str]) -> bytes:
    """int8 except the tensors in ``denylist``, which stay float (float I/O)."""
    tf = _tf()
    conv = make_converter(model, "int8", rep, int8_io=False)
    opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylist))
    dbg = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=_rep_fn(rep),
                                                    debug_options=opts)
    return dbg.get_nondebug_quantized_model()
