"""Training data: base images -> blind split by source -> degraded tiles -> ``tf.data``.

Base images ("sources") are photographs in folders the user names, scikit-image's bundled
photos (offline, the default) and procedurally generated dead-leaves images. The split
into train / val / test is made **by source** (a whole photograph is in exactly one
split), seeded, before any tile exists. Each training sample is drawn from one source by
a generator seeded with ``(seed, split, sample index)``, so the same seed always gives the
same data, and the streaming pipeline (``tf.data`` parallel map + prefetch) never holds
the photo collection in memory.

Public, stable API (used by ``convert/``; do not re-implement preprocessing elsewhere):

- :func:`representative_inputs` — normalised model inputs from the training split.
- :func:`evaluation_split` — the blind held-out test split with labels.
"""
from __future__ import annotations

import functools
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from device.errors import InputError
from device.common.preprocess import (DEFECT_KINDS, DEFECT_TILE, FOCUS_CLASSES, FOCUS_TILE,
                               extract_tiles, normalize_defect_tiles, normalize_focus_tiles,
                               textured_mask, tile_origins, to_bgr, to_grey)
from device.common.scenes import PHOTO_NAMES, dead_leaves, load_photo

from . import degrade
from .detail import tile_detail

KINDS = ("focus", "defects")
SPLITS = ("train", "val", "test")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_DEAD_LEAVES = 60        # procedural sources (split like any other source)
DEFAULT_EVAL_TILES = {"focus": 3000, "defects": 2000}
WORKING_LONG_SIDE = (480, 800)  # a base photo is resampled so its long side is in this range
LEAVES_SIZE = 384               # dead-leaves sources are rendered at this size
_MARGIN = 24                    # crop margin so blur/JPEG borders never reach a tile
# Share of samples drawn from photographs rather than dead leaves; None = uniform over
# all sources (the default, ~80% dead leaves with the built-in photos). A 0.6 share with
# a stronger downscale was tried and was worse on every figure (blind photos 0.66 vs 0.62
# 3-class but dead leaves 0.85 vs 0.94, Kaggle 6/9 vs 9/9), so it is off by default.
PHOTO_SHARE: float | None = None
SMALL_PHOTO_SCALE = (0.55, 1.0)  # random downscale of photos already near working size
# Tried and reverted (session 2), each judged by the blind split AND by the device's golden
# tests on real photos (tests/device/scoring/test_focus_net.py), which the shipped model passes:
#   photo bases 0.4-0.75x + width 1.5: split 0.876 3-class / AUC 0.994 / 0.72 px (from
#     0.856 / 0.986 / 0.76), but clean 'coffee' read as motion, the Kaggle HONOR-10 motion
#     shot as sharp;
#   + shake paths >= 2x longer than wide: split 0.895 / 0.993 / 0.68, same failures;
#   photo bases 0.4-1.0x + width 1.5: split 0.883 / 0.992 / 0.65, Kaggle 9/9 + 9/9 in
#     training's report, but on the device 'clock' (real hand shake) read as sharp and
#     'camera' with a 4 px disc as motion.
# The synthetic split rewards what real photos punish; more real photo bases are the lever.


@dataclass(frozen=True)
class Source:
    """One base image. ``kind`` is ``file``, ``photo`` (scikit-image) or ``leaves``."""
    kind: str
    ref: str

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.ref}"


@dataclass(frozen=True)
class DataConfig:
    """Where base images come from and how tiles are cut. Recorded in the model card."""
    images: tuple[str, ...] = ()
    builtin: bool = True
    dead_leaves: int = DEFAULT_DEAD_LEAVES
    seed: int = 0
    focus_tile: int = FOCUS_TILE
    defect_tile: int = DEFECT_TILE
    val_frac: float = 0.15
    test_frac: float = 0.2
    # A photograph's tile is a focus example only where its own detail is near the photo's
    # best (bokeh and soft skies are not "sharp" before any blur is added), and never
    # below an absolute floor (a photo soft all over gives none).
    sharp_detail_ratio: float = 0.4
    sharp_detail_floor: float = 3.0
    # Real focus sweeps labelled by their own curves (train.sweep_labels): training only,
    # each whole sweep in the train split; ``sweep_share`` of the samples come from them.
    sweeps: tuple[str, ...] = ()
    sweep_share: float = 0.15
    sweep_tiles_per_sample: int = 8
    # Share of a sweep sample's tiles drawn from its sharp tiles and shaken
    # (``degrade.shake_real_tile``) into real-content motion examples: the sweeps were
    # shot on a stand and have none, so without them real data only ever says "not motion".
    sweep_motion_share: float = 0.0
    # Share of defect crops cut into tiles centred on ring-rule candidates (where the
    # device asks the net: mostly busy texture) instead of a grid (mostly easy background).
    defect_candidate_share: float = 0.0

    def tile(self, kind: str) -> int:
        return self.focus_tile if kind == "focus" else self.defect_tile


# ----------------------------------------------------------------------------- sources
def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS and path.is_file()


def collect_sources(cfg: DataConfig) -> list[Source]:
    """All base images named by ``cfg``, in a stable order. Raises ``InputError`` for a
    missing or empty folder, or a file that is not a readable image."""
    sources: list[Source] = []
    for d in cfg.images:
        p = Path(d)
        if not p.is_dir():
            raise InputError(f"--images {d}: not a folder")
        files = sorted(f for f in p.rglob("*") if _is_image_file(f))
        if not files:
            raise InputError(f"--images {d}: no image files ({', '.join(IMAGE_EXTS)}) in this folder")
        for f in files:
            # A cheap signature check (no decode): catches text files named .jpg and
            # truncated-to-nothing files without reading 100k photos in full.
            if not cv2.haveImageReader(str(f)):
                raise InputError(f"{f}: not a readable image (unknown or corrupt format)")
            sources.append(Source("file", str(f)))
    for d in cfg.sweeps:
        from train.sweep_labels import sweep_files

        sweep_files(d)                     # a clear error now, not in a worker later
        sources.append(Source("sweep", str(Path(d))))
    if cfg.builtin:
        sources += [Source("photo", n) for n in PHOTO_NAMES]
    sources += [Source("leaves", str(i)) for i in range(max(0, cfg.dead_leaves))]
    if not sources:
        raise InputError("no base images: give --images DIR, or allow the built-in photos / dead leaves")
    return sources


def collections(images: Iterable[str]) -> list[dict]:
    """The attribution of each photo collection trained on: for every ``--images`` folder
    with a ``MANIFEST.csv`` (``file,source,licence,...``, as ../shared/data/train_photos
    has), one entry per collection (the first folder of ``file``) with its licences and
    file count; a folder without a manifest is listed as it is."""
    import csv

    out = []
    for folder in images:
        manifest = Path(folder) / "MANIFEST.csv"
        if not manifest.is_file():
            out.append({"folder": str(folder), "collection": None, "licences": [], "files": None})
            continue
        groups: dict = {}
        with manifest.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                name = row.get("file", "").split("/", 1)[0]
                g = groups.setdefault(name, {"licences": set(), "files": 0})
                g["files"] += 1
                if row.get("licence"):
                    g["licences"].add(row["licence"])
        for name, g in sorted(groups.items()):
            lic = Path(folder) / name / "licence"
            out.append({"folder": str(folder), "collection": name, "licences": sorted(g["licences"]),
                        "files": g["files"], "licence_files": str(lic) if lic.is_dir() else None})
    return out


def _stable_hash(text: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def split_sources(sources: Sequence[Source], cfg: DataConfig) -> dict[str, list[Source]]:
    """Blind split by source: each base image lands in exactly one of train/val/test.

    Each source is ranked by a seeded hash of its id, so the assignment of one photo does
    not change when others are added to the folder. Every split gets at least one source
    of each kind present (so a few built-in photos are always held out).
    """
    out: dict[str, list[Source]] = {s: [] for s in SPLITS}
    by_kind: dict[str, list[Source]] = {}
    for s in sources:
        by_kind.setdefault(s.kind, []).append(s)
    for kind, group in by_kind.items():
        if kind == "sweep":
            # The blind real-sweep check is the report's judged sweeps: a sweep named for
            # training is trained on whole, never cut into the blind splits.
            out["train"] += group
            continue
        ranked = sorted(group, key=lambda s: _stable_hash(s.id, cfg.seed))
        n = len(ranked)
        if n < 3:
            out["train"] += ranked  # too few to hold out; other kinds cover val/test
            continue
        n_test = max(1, int(round(cfg.test_frac * n)))
        n_val = max(1, int(round(cfg.val_frac * n)))
        out["test"] += ranked[:n_test]
        out["val"] += ranked[n_test:n_test + n_val]
        out["train"] += ranked[n_test + n_val:]
    for s in SPLITS:
        if not out[s]:
            raise InputError(f"not enough base images for a blind train/val/test split "
                             f"(got {len(sources)}; need at least 3 of one kind)")
    return out


@functools.lru_cache(maxsize=256)
def _load_cached(kind: str, ref: str, seed: int) -> np.ndarray:
    if kind == "photo":
        img = load_photo(ref)
        h, w = img.shape[:2]
        if max(h, w) > WORKING_LONG_SIDE[1]:  # pre-reduce once; the per-sample resize is then cheap
            s = WORKING_LONG_SIDE[1] / max(h, w)
            img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        return img
    if kind == "leaves":
        return dead_leaves(LEAVES_SIZE, LEAVES_SIZE, np.random.default_rng([seed, 7919, int(ref)]))
    raise ValueError(kind)


def load_source(src: Source, seed: int = 0) -> np.ndarray:
    """The clean base image of ``src`` as uint8 BGR at its native size."""
    if src.kind == "file":
        data = np.fromfile(src.ref, dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if img is None:
            raise InputError(f"{src.ref}: cannot decode this image")
        return to_bgr(img)
    return _load_cached(src.kind, src.ref, seed)


def to_working_resolution(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resample a base photo to the scale of a lores frame, never upscaling (upscaling
    would make a soft image and still call it sharp). Large photos get a long side in
    ``WORKING_LONG_SIDE``; small ones a random ``SMALL_PHOTO_SCALE`` downscale."""
    h, w = img.shape[:2]
    long_side = max(h, w)
    if long_side > WORKING_LONG_SIDE[1]:
        s = rng.uniform(*WORKING_LONG_SIDE) / long_side
    else:
        s = rng.uniform(*SMALL_PHOTO_SCALE)
    if s >= 0.999:
        return img
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _random_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = min(size, h), min(size, w)
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    crop = img[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:  # rotate by 90 degrees: motion angles and text lines vary
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)


def _check_size(img: np.ndarray, tile: int, src: Source) -> None:
    h, w = img.shape[:2]
    if h < tile or w < tile:
        raise InputError(f"{src.id}: image is {w}x{h} px at the working resolution, smaller "
                         f"than the {tile}-px tile")


# ----------------------------------------------------------------------------- samples
def detail_threshold(grey: np.ndarray, tile: int, ratio: float, floor: float) -> float:
    """The detail a tile of ``grey`` needs to count as sharp in the original: ``ratio``
    of the photo's own best (90th percentile of its textured tiles), at least ``floor``."""
    t = extract_tiles(grey, tile_origins(*grey.shape, tile), tile)
    t = t[textured_mask(t)]
    best = float(np.percentile(tile_detail(t), 90)) if len(t) else 0.0
    return max(ratio * best, floor)


def focus_sample(src: Source, rng: np.random.Generator, tile: int, seed: int = 0,
                 crops: int = 2, tiles_per_side: int = 3, detail: tuple[float, float] | None = None):
    """Tiles from one source: ``crops`` random crops, each with its own random class and
    degradation. Flat tiles (no blur evidence) are dropped, as at inference.

    The camera model runs on the grey (luma) image: the net only sees luma, and JPEG
    codes luma on its own, so this is equivalent to degrading colour and converting
    after, at a third of the cost.

    ``detail`` = (ratio, floor) keeps, for photographs, only the tiles that were sharp in
    the original (``detail_threshold``): elsewhere the label would be wrong (a "sharp"
    bokeh) or its blur size too small. Dead leaves are sharp everywhere.

    Returns ``(tiles uint8 (N,T,T), class_index (N,), blur_px (N,))``.
    """
    base = to_working_resolution(load_source(src, seed), rng)
    _check_size(base, tile, src)
    need = None
    if detail is not None and src.kind != "leaves":
        need = detail_threshold(to_grey(base), tile, *detail)
    size = tile * tiles_per_side + 2 * _MARGIN
    tiles, cls, blur = [], [], []
    for _ in range(crops):
        crop = to_grey(_random_crop(base, size, rng))
        lab = degrade.sample_focus_label(rng)
        out = degrade.degrade_focus(crop, lab, rng)
        h, w = out.shape[:2]
        m = min(_MARGIN, (h - tile) // 2, (w - tile) // 2)
        grey = out[m:h - m, m:w - m]
        origins = tile_origins(*grey.shape, tile)
        t = extract_tiles(grey, origins, tile)
        keep = textured_mask(t)
        if need is not None:
            clean = extract_tiles(crop[m:h - m, m:w - m], origins, tile)
            keep &= tile_detail(clean) >= need
        t = t[keep]
        tiles.append(t)
        cls += [lab.class_index] * len(t)
        blur += [lab.blur_px] * len(t)
    t = np.concatenate(tiles) if tiles else np.zeros((0, tile, tile), np.uint8)
    return t, np.asarray(cls, np.int64), np.asarray(blur, np.float32)


def sweep_sample(src: Source, rng: np.random.Generator, tile: int, n: int, motion_share: float = 0.0):
    """``n`` labelled tiles of a real sweep (``train.sweep_labels``), flipped and turned at
    random; no synthetic degradation: the blur, noise and JPEG are the camera's own. A
    ``motion_share`` of them are instead sharp tiles shaken by ``degrade.shake_real_tile``."""
    from train.sweep_labels import cached_labels

    lab = cached_labels(src.ref, tile)
    if not len(lab.tiles):
        return np.zeros((0, tile, tile), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.float32)
    idx = rng.integers(0, len(lab.tiles), n)
    tiles = lab.tiles[idx].copy()
    classes, blur = lab.classes[idx].copy(), lab.blur_px[idx].copy()
    sharp = np.flatnonzero(lab.classes == FOCUS_CLASSES.index("sharp"))
    motion = FOCUS_CLASSES.index("motion")
    for i in range(n):
        if len(sharp) and rng.random() < motion_share:
            tiles[i], m = degrade.shake_real_tile(lab.tiles[sharp[int(rng.integers(len(sharp)))]], rng)
            classes[i], blur[i] = motion, m.blur_px
        if rng.random() < 0.5:
            tiles[i] = tiles[i][:, ::-1]
        tiles[i] = np.rot90(tiles[i], int(rng.integers(4)))
    return tiles, classes, blur


# Share of defect crops turned microscope-like (``degrade.microscope_like``): smooth,
# soft, fringed, banded content is where a lone bright photosite is easiest to confuse
# with the scene, and photo collections have little of it.
MICROSCOPE_SHARE = 0.35


def sample_defect_condition(rng: np.random.Generator) -> dict:
    """Random defect imaging condition: Bayer + demosaic (85%, the camera's case) or plain
    RGB pixels; JPEG (70%, quality 75-98, centred on the target's q90); 0-4 defects (none
    in ~30% of crops)."""
    mode = "bayer" if rng.random() < 0.85 else "rgb"
    q = int(rng.integers(75, 99)) if rng.random() < 0.7 else 0
    n = 0 if rng.random() < 0.3 else int(rng.integers(1, 5))
    return dict(mode=mode, jpeg_quality=q, n_defects=n)


def defect_sample(src: Source, rng: np.random.Generator, tile: int, seed: int = 0,
                  crops: int = 3, tiles_per_side: int = 2, condition: dict | None = None,
                  candidate_share: float = 0.0):
    """Defect tiles from one source. Returns ``(tiles uint8 (N,T,T,3), heatmap target
    float32 (N,T,T,K))``. The clean crop gets exposure and sensor noise first, so noise is
    never mistaken for a defect. ``condition`` fixes mode/jpeg_quality (e.g. the q90 test).
    ``candidate_share``: the share of crops cut into tiles centred on ring-rule candidates
    (as many as the grid would give, drawn at random among them) rather than a grid."""
    base = to_working_resolution(load_source(src, seed), rng)
    _check_size(base, tile, src)
    size = tile * tiles_per_side
    tiles, heat = [], []
    for _ in range(crops):
        crop = _random_crop(base, size, rng)
        if crop.shape[0] < tile or crop.shape[1] < tile:
            continue
        if rng.random() < MICROSCOPE_SHARE:
            crop = degrade.microscope_like(crop, rng)
        cond = sample_defect_condition(rng)
        if condition:
            cond.update(condition)
        lin = degrade.srgb_to_linear(crop) * np.float32(np.exp(rng.uniform(np.log(0.4), np.log(1.5))))
        lin = degrade.add_sensor_noise(lin, float(np.exp(rng.uniform(np.log(300), np.log(20000)))),
                                       float(rng.uniform(0, 0.005)), rng)
        clean = degrade.quantise_u8(degrade.linear_to_srgb(lin))
        n = cond["n_defects"] * max(1, (crop.shape[0] // tile) * (crop.shape[1] // tile)) // 2
        img, mask, _ = degrade.inject_defects(clean, n, rng, mode=cond["mode"],
                                              jpeg_quality=cond["jpeg_quality"])
        target = degrade.defect_heatmap_target(mask)
        org = tile_origins(*img.shape[:2], tile)
        if candidate_share > 0 and rng.random() < candidate_share:
            org = _candidate_origins(img, tile, len(org), rng) if len(org) else org
        tiles.append(extract_tiles(img, org, tile))
        heat.append(extract_tiles(target, org, tile))
    if not tiles:
        return (np.zeros((0, tile, tile, 3), np.uint8),
                np.zeros((0, tile, tile, len(DEFECT_KINDS)), np.float32))
    return np.concatenate(tiles), np.concatenate(heat)


def _candidate_origins(img: np.ndarray, tile: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` tile origins centred on ring-rule candidates of ``img`` at the net path's
    margin (repeated when there are fewer; a crop without candidates keeps its grid)."""
    from device.defects.candidates import frame_candidates
    from device.defects.net import DefectOptions
    o = DefectOptions()
    ys, xs = frame_candidates(img, o.ring_threshold, o.spread_gain)[:2]
    h, w = img.shape[:2]
    if len(ys) == 0:
        return tile_origins(h, w, tile)
    pick = rng.choice(len(ys), n, replace=len(ys) < n)
    oy = np.clip(ys[pick] - tile // 2 + rng.integers(-2, 3, n), 0, h - tile)
    ox = np.clip(xs[pick] - tile // 2 + rng.integers(-2, 3, n), 0, w - tile)
    return np.stack([oy, ox], 1).astype(np.int64)


def _sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLITS.index(split), int(index)])


def pick_source(sources: Sequence[Source], rng: np.random.Generator, sweep_share: float = 0.0) -> Source:
    """A source for one sample: a real sweep with probability ``sweep_share`` when there
    are any, else uniform over the other sources, or, when ``PHOTO_SHARE`` is set,
    photographs (folders + built-in) get that share however many dead-leaves images
    there are."""
    sweeps = [s for s in sources if s.kind == "sweep"]
    if sweeps and sweep_share > 0 and rng.random() < sweep_share:
        return sweeps[int(rng.integers(len(sweeps)))]
    sources = [s for s in sources if s.kind != "sweep"] or sweeps
    photos = [s for s in sources if s.kind != "leaves"]
    leaves = [s for s in sources if s.kind == "leaves"]
    pool = sources
    if photos and leaves and PHOTO_SHARE is not None:
        pool = photos if rng.random() < PHOTO_SHARE else leaves
    return pool[int(rng.integers(len(pool)))]


def make_sample(kind: str, sources: Sequence[Source], cfg: DataConfig, split: str, index: int,
                condition: dict | None = None, raw: bool = False, meta: list | None = None):
    """Sample ``index`` of ``split``: normalised model inputs and targets (numpy).

    The source is picked by the sample's own seeded generator, so sample ``i`` is the
    same wherever and in whatever order it is computed (parallel map, resume).
    """
    rng = _sample_rng(cfg.seed, split, index)
    src = pick_source(sources, rng, cfg.sweep_share if kind == "focus" else 0.0)
    if meta is not None:
        meta.append(src)
    if kind == "focus":
        if src.kind == "sweep":
            t, c, b = sweep_sample(src, rng, cfg.focus_tile, cfg.sweep_tiles_per_sample,
                                   cfg.sweep_motion_share)
        else:
            t, c, b = focus_sample(src, rng, cfg.focus_tile, cfg.seed,
                                   detail=(cfg.sharp_detail_ratio, cfg.sharp_detail_floor))
        onehot = np.eye(len(FOCUS_CLASSES), dtype=np.float32)[c]
        x = normalize_focus_tiles(t) if len(t) else np.zeros((0, cfg.focus_tile, cfg.focus_tile, 1), np.float32)
        return (x, onehot, b.reshape(-1, 1)) + ((t,) if raw else ())
    t, h = defect_sample(src, rng, cfg.defect_tile, cfg.seed, condition=condition,
                         candidate_share=cfg.defect_candidate_share)
    x = normalize_defect_tiles(t) if len(t) else np.zeros((0,) + t.shape[1:], np.float32)
    return (x, h) + ((t,) if raw else ())


def _progress(total: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the train extra
        return None
    return tqdm(total=total, desc=desc, unit="tile", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, leave=False)


def build_split(kind: str, cfg: DataConfig, split: str, n: int, progress: bool = False,
                condition: dict | None = None, sources: Sequence[Source] | None = None,
                raw: bool = False, tile_sources: list | None = None):
    """Materialise ``n`` tiles of one split in memory (for val/test/calibration), with a
    progress bar. Focus returns ``(x, dict(probs, blur_px))``; defects ``(x, heatmap)``.
    With ``raw=True`` a third item holds the uint8 tiles before normalisation (for the
    classic baselines, which work on raw pixels). ``tile_sources``, if given, receives the
    :class:`Source` of every returned tile (for per-source-kind metrics)."""
    if sources is None:
        sources = split_sources(collect_sources(cfg), cfg)[split]
    parts: list[tuple] = []
    got, i = 0, 0
    bar = _progress(n, f"{kind} {split} tiles", progress)
    while got < n:
        used: list = []
        s = make_sample(kind, sources, cfg, split, i, condition=condition, raw=raw, meta=used)
        i += 1
        if i > 50 * n + 100:
            raise InputError(f"{kind}: the {split} images yield no usable tiles (all flat?)")
        if len(s[0]) == 0:
            continue
        parts.append(s)
        if tile_sources is not None:
            tile_sources += used * min(len(s[0]), n - got)
        got += len(s[0])
        if bar is not None:
            bar.update(len(s[0]))
    if bar is not None:
        bar.close()
    cols = [np.concatenate([p[j] for p in parts])[:n] for j in range(len(parts[0]))]
    if kind == "focus":
        out = (cols[0], {"probs": cols[1], "blur_px": cols[2][:, 0]})
    else:
        out = (cols[0], cols[1])
    return out + ((cols[-1],) if raw else ())


# ----------------------------------------------------------------------------- tf.data
def tf_dataset(kind: str, sources: Sequence[Source], cfg: DataConfig, batch: int,
               split: str = "train", start: int = 0, shuffle: int = 2048):
    """Infinite streaming dataset of ``(x, y)`` batches for ``model.fit``.

    ``Dataset.counter(start)`` -> parallel ``map`` of :func:`make_sample` (OpenCV releases
    the GIL, so the map really runs on several cores) -> unbatch -> seeded shuffle ->
    batch -> prefetch. ``start`` lets a resumed run continue with fresh samples.
    """
    import tensorflow as tf

    tile = cfg.tile(kind)
    srcs = list(sources)

    if kind == "focus":
        def fn(i):
            return make_sample("focus", srcs, cfg, split, int(i))
        out_t = (tf.float32, tf.float32, tf.float32)

        def wrap(i):
            x, p, b = tf.numpy_function(fn, [i], out_t, stateful=False)
            x.set_shape((None, tile, tile, 1))
            p.set_shape((None, len(FOCUS_CLASSES)))
            b.set_shape((None, 1))
            return tf.data.Dataset.from_tensor_slices((x, (p, b)))
    else:
        def fn(i):
            return make_sample("defects", srcs, cfg, split, int(i))
        out_t = (tf.float32, tf.float32)

        def wrap(i):
            x, h = tf.numpy_function(fn, [i], out_t, stateful=False)
            x.set_shape((None, tile, tile, 3))
            h.set_shape((None, tile, tile, len(DEFECT_KINDS)))
            return tf.data.Dataset.from_tensor_slices((x, h))

    ds = tf.data.Dataset.counter(start)
    ds = ds.map(lambda i: i, num_parallel_calls=1)
    ds = ds.interleave(wrap, cycle_length=max(2, os.cpu_count() or 2), block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shuffle:
        ds = ds.shuffle(shuffle, seed=cfg.seed + start, reshuffle_each_iteration=False)
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------- public API
def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")


def representative_inputs(kind: str, n: int, seed: int, *, images: Iterable[str] = ()) -> np.ndarray:
    """``n`` normalised model inputs from the **training** split, for int8 calibration.

    ``kind`` is ``"focus"`` -> float32 ``(n, FOCUS_TILE, FOCUS_TILE, 1)`` from
    ``normalize_focus_tiles``; ``"defects"`` -> float32 ``(n, DEFECT_TILE, DEFECT_TILE, 3)``
    from ``normalize_defect_tiles``. Same ``seed`` (and ``images``) -> same array. Uses the
    same sources and degradations as training (scikit-image photos + dead leaves by
    default), so the calibration ranges match what the model saw.
    """
    _check_kind(kind)
    cfg = DataConfig(images=tuple(images), seed=int(seed))
    x, _ = build_split(kind, cfg, "train", int(n))
    return x


def evaluation_split(kind: str, seed: int, n: int | None = None, *, images: Iterable[str] = (),
                     condition: dict | None = None, progress: bool = False):
    """The blind held-out test split: tiles from base images never used in training.

    Returns ``(x, y)``. ``x`` is as in :func:`representative_inputs`. For ``"focus"``,
    ``y = {"probs": one-hot float32 (N, 3) over FOCUS_CLASSES, "blur_px": float32 (N,)}``
    (blur in working-resolution pixels: disc radius for defocus, half the trajectory
    length for motion, < 0.6 for sharp). For ``"defects"``, ``y`` is the heatmap target
    float32 ``(N, DEFECT_TILE, DEFECT_TILE, 3)`` over DEFECT_KINDS (1 on each defective
    site and its 8 neighbours). By default the defect split is the target condition:
    defects in the Bayer mosaic, demosaiced, then JPEG quality 90 (``condition`` may
    override, e.g. ``{"mode": "rgb", "jpeg_quality": 0}``). ``n`` defaults to
    ``DEFAULT_EVAL_TILES[kind]``. Deterministic for a given ``seed`` and ``images``; pass
    the seed (and image folders) recorded in the model card.
    """
    _check_kind(kind)
    cfg = DataConfig(images=tuple(images), seed=int(seed))
    if kind == "defects" and condition is None:
        condition = {"mode": "bayer", "jpeg_quality": 90}
    return build_split(kind, cfg, "test", int(n or DEFAULT_EVAL_TILES[kind]), progress=progress,
                       condition=condition)
