"""Training loop: strategy scope, streaming data, checkpoints, resume, early stopping.

Everything a run needs is in :class:`TrainConfig`; :func:`train` writes the model dir:

    OUT/model.keras         the trained model (best validation loss)
    OUT/history.json        per-epoch losses and metrics (merged across resumes)
    OUT/model_card.json     inputs, normalisation, outputs, data sources, seed, command, metrics
    OUT/report/             report.md + PNG plots (``train.evaluate``)
    OUT/checkpoints/        last.keras, best.keras, log.csv, state.json (for ``--resume``)
"""
from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.common.atomic import atomic_write_json
from device.errors import InputError, ModelError
from device.common.preprocess import DEFECT_KINDS, FOCUS_CLASSES

from . import data as D

DEFAULTS = {
    # Sized so both default runs finish in well under 30 minutes on a 2-core CPU.
    "focus": dict(epochs=15, steps_per_epoch=200, batch=64, lr=3e-3, patience=4, val_tiles=2000),
    "defects": dict(epochs=10, steps_per_epoch=150, batch=64, lr=3e-3, patience=3, val_tiles=1500),
}
DEFECT_POS_WEIGHT = 20.0


@dataclass
class TrainConfig:
    kind: str
    out: str
    epochs: int
    steps_per_epoch: int
    batch: int
    lr: float
    patience: int
    val_tiles: int
    seed: int = 0
    images: tuple[str, ...] = ()
    sweeps: tuple[str, ...] = ()
    builtin: bool = True
    dead_leaves: int = D.DEFAULT_DEAD_LEAVES
    eval_tiles: int | None = None
    resume: bool = False
    strategy: str = "auto"
    width: float = 1.0
    evaluate: bool = True
    kaggle: str | None = None
    progress: bool = True
    command: str = ""
    tile: int | None = None
    sharp_detail_ratio: float | None = None  # focus: None = DataConfig's default
    init: str | None = None                  # warm start: a model.keras to take weights from
    sweep_motion: float | None = None        # focus: None = DataConfig's sweep_motion_share
    candidate_tiles: float | None = None     # defects: None = DataConfig's defect_candidate_share

    def data_config(self) -> D.DataConfig:
        kw = dict(images=tuple(self.images), sweeps=tuple(self.sweeps), builtin=self.builtin,
                  dead_leaves=self.dead_leaves, seed=self.seed)
        if self.tile:
            kw["focus_tile" if self.kind == "focus" else "defect_tile"] = int(self.tile)
        if self.sharp_detail_ratio is not None:
            kw["sharp_detail_ratio"] = float(self.sharp_detail_ratio)
        if self.sweep_motion is not None:
            if not 0.0 <= self.sweep_motion <= 1.0:
                raise InputError(f"--sweep-motion must be a share between 0 and 1, got {self.sweep_motion}")
            kw["sweep_motion_share"] = float(self.sweep_motion)
        if self.candidate_tiles is not None:
            if not 0.0 <= self.candidate_tiles <= 1.0:
                raise InputError(f"--candidate-tiles must be a share between 0 and 1, got {self.candidate_tiles}")
            kw["defect_candidate_share"] = float(self.candidate_tiles)
        return D.DataConfig(**kw)


def get_strategy(name: str):
    """``auto``: MirroredStrategy over all GPUs when there is more than one, else the
    default; ``mirrored``: MirroredStrategy always; ``default``: no distribution. The
    model is always built and compiled inside ``strategy.scope()``."""
    import tensorflow as tf

    if name == "mirrored" or (name == "auto" and len(tf.config.list_physical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    if name in ("auto", "default"):
        return tf.distribute.get_strategy()
    raise InputError(f"--strategy must be auto, mirrored or default, got {name!r}")


def cosine_lr(lr: float, epoch: int, epochs: int, floor: float = 0.01) -> float:
    """Learning rate for ``epoch``: cosine from ``lr`` down to ``floor * lr`` at the end."""
    t = min(max(epoch, 0), max(epochs - 1, 1)) / max(epochs - 1, 1)
    return float(lr * (floor + (1.0 - floor) * 0.5 * (1.0 + np.cos(np.pi * t))))


def weighted_bce(y_true, y_pred):
    """Binary cross-entropy with defect pixels weighted ``DEFECT_POS_WEIGHT`` times: they
    are ~1% of pixels, and missing one costs more than a stray low score."""
    import keras
    from keras import ops

    eps = keras.config.epsilon()
    p = ops.clip(y_pred, eps, 1.0 - eps)
    w = 1.0 + (DEFECT_POS_WEIGHT - 1.0) * y_true
    bce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    return ops.mean(w * bce, axis=-1)


def compile_model(model, kind: str, lr: float):
    import keras

    opt = keras.optimizers.Adam(learning_rate=lr)
    if kind == "focus":
        model.compile(optimizer=opt,
                      loss=[keras.losses.CategoricalCrossentropy(label_smoothing=0.02),
                            keras.losses.Huber(delta=1.0)],
                      loss_weights=[1.0, 0.5],
                      metrics=[["categorical_accuracy"], ["mae"]])
    else:
        model.compile(optimizer=opt, loss=weighted_bce,
                      metrics=[keras.metrics.AUC(name="pr_auc", curve="PR")])
    return model


def _build_model(kind: str, width: float, tile: int):
    from . import models

    if kind == "focus":
        return models.build_focus_net(width=width, tile=tile)
    return models.build_defect_net(width=width, tile=tile)


def _val_targets(kind: str, y):
    if kind == "focus":
        return (y["probs"], y["blur_px"].reshape(-1, 1))
    return y


def _read_log(path: Path) -> dict[str, list[float]]:
    hist: dict[str, list[float]] = {}
    if not path.exists():
        return hist
    with path.open() as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                try:
                    hist.setdefault(k, []).append(float(v))
                except (TypeError, ValueError):
                    pass
    return hist


def write_json(path: Path, obj) -> None:
    """Atomically, in the key order given (numpy values and paths converted)."""
    atomic_write_json(path, obj, sort_keys=False)


def model_card(cfg: TrainConfig, dcfg: D.DataConfig, splits: dict, model, wall_s: float,
               epochs_run: int, metrics: dict | None) -> dict:
    """The machine-readable description of a trained model (``model_card.json``)."""
    tile = dcfg.tile(cfg.kind)
    src_summary = {s: {"n": len(v), "kinds": sorted({x.kind for x in v}),
                       "photos": [x.ref for x in v if x.kind == "photo"]} for s, v in splits.items()}
    if cfg.kind == "focus":
        io = {
            "input": {"name": "tile", "shape": [tile, tile, 1], "dtype": "float32",
                      "normalisation": "device.common.preprocess.normalize_focus_tiles",
                      "source": "grey uint8 tiles from device.common.preprocess.tile_origins/extract_tiles; "
                                "flat tiles (device.common.preprocess.textured_mask False) are skipped"},
            "outputs": [
                {"name": "probs", "shape": [len(FOCUS_CLASSES)], "activation": "softmax",
                 "meaning": "class probabilities", "classes": list(FOCUS_CLASSES)},
                {"name": "blur_px", "shape": [1], "activation": "linear",
                 "meaning": "blur size in working-resolution (640-px-wide lores) pixels: disc radius "
                            "for defocus, half the trajectory length for motion, ~0 for sharp"},
            ],
            "class_names": list(FOCUS_CLASSES),
            "whole_image": "device.scoring.pooling.judge: skip flat tiles; certainty-weighted "
                           "mean of tile probs over the most detailed 15% of textured tiles "
                           "(or the ROI's tiles), certainty = 1 - entropy/log(3) (Yang et al. 2018)",
        }
    else:
        io = {
            "input": {"name": "tile", "shape": [tile, tile, 3], "dtype": "float32",
                      "normalisation": "device.common.preprocess.normalize_defect_tiles",
                      "source": "BGR uint8 tiles from device.common.preprocess.tile_origins/extract_tiles"},
            "outputs": [
                {"name": "heatmap", "shape": [tile, tile, len(DEFECT_KINDS)], "activation": "sigmoid",
                 "meaning": "per-pixel probability of a defect of each kind; a detection is a local "
                            "maximum (5x5) of the max over kinds above the threshold",
                 "kinds": list(DEFECT_KINDS)},
            ],
            "kinds": list(DEFECT_KINDS),
        }
    return {
        "name": model.name,
        "kind": cfg.kind,
        **io,
        "params": int(model.count_params()),
        "data": {
            "images": list(dcfg.images), "builtin_photos": dcfg.builtin,
            "collections": D.collections(dcfg.images),
            "sweeps": [{"folder": d, "labelled_by": "its own local focus curves (train.sweep_labels)"}
                       for d in dcfg.sweeps],
            "sweep_motion_share": dcfg.sweep_motion_share,
            "defect_candidate_share": dcfg.defect_candidate_share,
            "dead_leaves": dcfg.dead_leaves,
            "sharp_detail": {"ratio": dcfg.sharp_detail_ratio, "floor": dcfg.sharp_detail_floor},
            "split": "blind, by source image (seeded hash); val/test photos never trained on",
            "splits": src_summary,
            "degradations": ("defocus disc PSF (soft edge, aberration) / line + shake motion PSF in "
                             "linear light; shot + read noise; exposure, contrast, sharpening; JPEG"
                             if cfg.kind == "focus" else
                             "dead/hot/stuck photosites (single + clusters) in an RGGB mosaic, OpenCV "
                             "demosaic, optional JPEG 70-98; plain RGB single pixels; sensor noise"),
            "never_trained_on": "../shared/data/kaggle_blur_samples, ../shared/data/pcb_focus_sweep "
                                "(evaluation only)",
        },
        "training": {"seed": cfg.seed, "epochs_run": epochs_run, "epochs_max": cfg.epochs,
                     "steps_per_epoch": cfg.steps_per_epoch, "batch": cfg.batch, "lr": cfg.lr,
                     "wall_time_s": round(wall_s, 1), "strategy": cfg.strategy, "width": cfg.width,
                     "init": cfg.init},
        "command": cfg.command,
        "metrics": metrics or {},
    }


def _load_init(keras, path: str, fresh):
    """The warm-start model, which must have the architecture ``fresh`` would have (same
    kind, tile and width): otherwise its weights mean something else."""
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise ModelError(f"--init: {path}: cannot load ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    shapes = [tuple(w.shape) for w in model.weights]
    if model.name != fresh.name or shapes != [tuple(w.shape) for w in fresh.weights]:
        raise InputError(f"--init: {path} is not a {fresh.name} of this tile size and width")
    return model


def train(cfg: TrainConfig) -> dict:
    """Run one training job end to end and return the model card."""
    import keras

    t0 = time.time()
    if cfg.init and not cfg.resume and not Path(cfg.init).is_file():
        raise InputError(f"--init: no such model file: {cfg.init}")
    out = Path(cfg.out)
    ck = out / "checkpoints"
    dcfg = cfg.data_config()
    sources = D.collect_sources(dcfg)
    splits = D.split_sources(sources, dcfg)
    tile = dcfg.tile(cfg.kind)

    state_path = ck / "state.json"
    initial_epoch = 0
    if cfg.resume:
        if not (ck / "last.keras").exists() or not state_path.exists():
            raise InputError(f"--resume: no checkpoint in {ck}")
        initial_epoch = int(json.loads(state_path.read_text())["epoch"])
    elif ck.exists() and (ck / "last.keras").exists():
        # A fresh run must not append to an old log.
        for f in ("last.keras", "best.keras", "log.csv", "state.json"):
            (ck / f).unlink(missing_ok=True)
    ck.mkdir(parents=True, exist_ok=True)

    keras.utils.set_random_seed(cfg.seed)
    print(f"[focus-train] {cfg.kind}: {len(splits['train'])} train / {len(splits['val'])} val / "
          f"{len(splits['test'])} test source images (blind split, seed {cfg.seed})", file=sys.stderr)
    xv, yv = D.build_split(cfg.kind, dcfg, "val", cfg.val_tiles, progress=cfg.progress,
                           sources=splits["val"])

    strategy = get_strategy(cfg.strategy)
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        if cfg.resume:
            model = keras.models.load_model(ck / "last.keras", compile=False)
        elif cfg.init:
            model = _load_init(keras, cfg.init, _build_model(cfg.kind, cfg.width, tile))
        else:
            model = _build_model(cfg.kind, cfg.width, tile)
        compile_model(model, cfg.kind, cfg.lr)

    ds = D.tf_dataset(cfg.kind, splits["train"], dcfg, cfg.batch * replicas,
                      start=initial_epoch * cfg.steps_per_epoch * 16)

    class _State(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            write_json(state_path, {"epoch": epoch + 1, "kind": cfg.kind})

    callbacks = [
        keras.callbacks.ModelCheckpoint(str(ck / "last.keras")),
        keras.callbacks.ModelCheckpoint(str(ck / "best.keras"), monitor="val_loss", save_best_only=True),
        keras.callbacks.CSVLogger(str(ck / "log.csv"), append=cfg.resume),
        _State(),
        # Cosine decay by absolute epoch index, so a resumed run continues the same schedule.
        keras.callbacks.LearningRateScheduler(lambda epoch: cosine_lr(cfg.lr, epoch, cfg.epochs)),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                      restore_best_weights=True),
    ]
    if initial_epoch < cfg.epochs:
        model.fit(ds, steps_per_epoch=cfg.steps_per_epoch, epochs=cfg.epochs,
                  initial_epoch=initial_epoch, validation_data=(xv, _val_targets(cfg.kind, yv)),
                  callbacks=callbacks, verbose=1 if cfg.progress else 2)
    # The best-validation weights are the model (EarlyStopping restores them only when it
    # stops early, and a resumed run has lost its in-memory best).
    if (ck / "best.keras").exists():
        with strategy.scope():
            model = keras.models.load_model(ck / "best.keras", compile=False)
    model.save(out / "model.keras")
    hist = _read_log(ck / "log.csv")
    write_json(out / "history.json", hist)
    epochs_run = len(hist.get("epoch", []))
    wall = time.time() - t0
    card = model_card(cfg, dcfg, splits, model, wall, epochs_run, None)
    write_json(out / "model_card.json", card)
    if cfg.evaluate:
        from . import evaluate

        evaluate.evaluate_model_dir(out, model=model, n=cfg.eval_tiles, kaggle=cfg.kaggle,
                                              progress=cfg.progress)
        card = json.loads((out / "model_card.json").read_text())
        card["training"]["wall_time_s"] = round(time.time() - t0, 1)
        card["training"]["train_wall_time_s"] = round(wall, 1)
        write_json(out / "model_card.json", card)
    return card
