"""Tiny trained models and a stand-in for ``train.data`` so conversion tests run in seconds.

The stand-in builds its tiles with the shared preprocessing (``device.common.preprocess``) from
a dead-leaves texture, blurred or not, so the tiny nets learn something real and a
broken conversion shows up as a drop in accuracy.
"""
from __future__ import annotations

import json
import os
import types

import cv2
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from device.common.preprocess import (DEFECT_TILE, FOCUS_TILE, normalize_defect_tiles,
                               normalize_focus_tiles)
from device.common.scenes import dead_leaves


def _focus_set(n, seed):
    rng = np.random.default_rng(seed)
    scene = dead_leaves(512, 512, rng, color=False)[..., 0]
    tiles, labels, blur = [], [], []
    for i in range(n):
        y, x = rng.integers(0, 512 - FOCUS_TILE, 2)
        t = scene[y:y + FOCUS_TILE, x:x + FOCUS_TILE]
        k = i % 3
        r = 0.0
        if k == 1:
            r = float(rng.uniform(2, 5))
            t = cv2.GaussianBlur(t, (0, 0), r)
        elif k == 2:
            r = float(rng.uniform(2, 5))
            ker = np.zeros((15, 15), np.float32)
            ker[7, 7 - int(r):7 + int(r) + 1] = 1
            t = cv2.filter2D(t, -1, ker / ker.sum())
        tiles.append(t)
        labels.append(k)
        blur.append(r)
    x = normalize_focus_tiles(np.stack(tiles))
    return x, {"probs": np.eye(3, dtype=np.float32)[labels], "blur_px": np.array(blur, np.float32)}


def _defect_set(n, seed):
    rng = np.random.default_rng(seed)
    scene = dead_leaves(256, 256, rng)
    scene = cv2.GaussianBlur(scene, (0, 0), 1.5)
    xs, ys = [], []
    for i in range(n):
        y, x = rng.integers(0, 256 - DEFECT_TILE, 2)
        t = scene[y:y + DEFECT_TILE, x:x + DEFECT_TILE].copy()
        h = np.zeros((DEFECT_TILE, DEFECT_TILE, 3), np.float32)
        if i % 2:
            py, px = rng.integers(2, DEFECT_TILE - 2, 2)
            k = int(rng.integers(0, 3))
            t[py, px] = (0, 0, 0) if k == 0 else (255, 255, 255) if k == 1 else (0, 255, 0)
            h[py - 1:py + 2, px - 1:px + 2, k] = 1.0   # 3x3 label: learnable in a few steps
        xs.append(t)
        ys.append(h)
    return normalize_defect_tiles(np.stack(xs)), np.stack(ys)


def _make(kind, n, seed):
    return _focus_set(n, seed) if kind == "focus" else _defect_set(n, seed)


@pytest.fixture(scope="session")
def fake_data():
    return types.SimpleNamespace(
        representative_inputs=lambda kind, n, seed: _make(kind, n, seed + 1)[0],
        evaluation_split=lambda kind, seed, n=None: _make(kind, n or 300, seed + 2),
    )


def _fast_bn(model):
    """BatchNorm moving averages that settle within ~100 steps (default momentum 0.99 does not)."""
    import keras
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.8
    return model


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    """{"focus": dir, "defects": dir}: focus-train-shaped dirs with briefly trained nets."""
    import keras
    from train.models import build_defect_net, build_focus_net

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("models")
    out = {}
    fx, fy = _focus_set(600, 10)
    m = _fast_bn(build_focus_net(width=0.5))
    m.compile(keras.optimizers.Adam(3e-3), ["categorical_crossentropy", "mse"], jit_compile=False)
    m.fit(fx, [fy["probs"], fy["blur_px"][:, None]], epochs=5, batch_size=32, verbose=0)
    d = root / "focus"
    d.mkdir()
    m.save(d / "model.keras")
    (d / "model_card.json").write_text(json.dumps({"kind": "focus", "seed": 0,
                                                   "metrics": {"accuracy": 0.5}}))
    out["focus"] = d
    dx, dy = _defect_set(400, 11)
    m = _fast_bn(build_defect_net(width=0.5))
    # Defect pixels are rare: class-balanced focal loss learns them in a few steps.
    m.compile(keras.optimizers.Adam(1e-2),
              keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.9),
              jit_compile=False)
    m.fit(dx, dy, epochs=5, batch_size=32, verbose=0)
    d = root / "defects"
    d.mkdir()
    m.save(d / "model.keras")
    (d / "model_card.json").write_text(json.dumps({"kind": "defects", "seed": 0}))
    out["defects"] = d
    return out
