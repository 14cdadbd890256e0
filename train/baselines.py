"""Classic baselines scored on the same tiles as the CNNs.

Focus: Tenengrad and variance of the Laplacian per tile, on raw (un-normalised) grey
pixels, with a sharp/blurred threshold and a blur-size mapping fitted on the training
split. They give one number per tile, so they cannot tell defocus from motion; in the
3-class table a "blurred" baseline answer counts as "defocus".

Defects: the single-frame cosmetic-correction rule (as in Siril and
PixInsight): a pixel is suspect when it departs from its local median by more than
k times the average absolute deviation (avgDev) and its neighbourhood does not (so a
star or an edge is not flagged).
"""
from __future__ import annotations

import cv2
import numpy as np

from device.scoring.measures import tenengrad, variance_of_laplacian


FOCUS_BASELINES = {"tenengrad": tenengrad, "variance_of_laplacian": variance_of_laplacian}


def tile_scores(name: str, tiles: np.ndarray) -> np.ndarray:
    """log10(1 + measure) for each raw grey tile ``(N, T, T)`` (or ``(N, T, T, 1)``)."""
    fn = FOCUS_BASELINES[name]
    t = tiles.reshape(tiles.shape[:3])
    return np.log10(1.0 + np.array([fn(x) for x in t], dtype=np.float64))


class FocusBaseline:
    """A threshold (max balanced accuracy on the training tiles) and a quadratic map from
    log-measure to blur px, both fitted on the training split."""

    def __init__(self, name: str):
        self.name = name
        self.threshold = 0.0
        self.coef = np.zeros(3)

    def fit(self, tiles: np.ndarray, is_sharp: np.ndarray, blur_px: np.ndarray) -> "FocusBaseline":
        s = tile_scores(self.name, tiles)
        cands = np.unique(np.quantile(s, np.linspace(0.01, 0.99, 197)))
        best, best_t = -1.0, float(np.median(s))
        for t in cands:
            pred = s >= t
            tpr = np.mean(pred[is_sharp]) if is_sharp.any() else 0.0
            tnr = np.mean(~pred[~is_sharp]) if (~is_sharp).any() else 0.0
            if (tpr + tnr) / 2 > best:
                best, best_t = (tpr + tnr) / 2, float(t)
        self.threshold = best_t
        self.coef = np.polyfit(s, blur_px, 2)
        return self

    def predict(self, tiles: np.ndarray) -> dict:
        s = tile_scores(self.name, tiles)
        return {"score": s, "sharp": s >= self.threshold,
                "blur_px": np.clip(np.polyval(self.coef, s), 0.0, None)}


# --------------------------------------------------------------------------- defects
def defect_rule_scores(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel deviation score and sign for BGR uint8 tiles ``(N, T, T, 3)``.

    score = max over channels of |p - median5x5| / avgDev, where avgDev is the tile's mean
    absolute deviation from the local median (floored at 1 grey level), and zero where the
    3x3 neighbourhood *without the centre* also departs from the median by more than
    avgDev·k/2 (an edge or a star, not an isolated pixel). ``sign`` is +1 (hot) / -1 (dead).
    """
    n, h, w, c = tiles.shape
    score = np.zeros((n, h, w), np.float32)
    sign = np.zeros((n, h, w), np.int8)
    ring = np.ones((3, 3), np.float32) / 8.0
    ring[1, 1] = 0.0
    for i in range(n):
        best = np.zeros((h, w), np.float32)
        bsign = np.zeros((h, w), np.int8)
        for ch in range(c):
            x = np.ascontiguousarray(tiles[i, :, :, ch])
            med = cv2.medianBlur(x, 5).astype(np.float32)
            xf = x.astype(np.float32)
            dev = xf - med
            avgdev = max(float(np.mean(np.abs(dev))), 1.0)
            neigh = cv2.filter2D(xf, -1, ring, borderType=cv2.BORDER_REFLECT) - med
            sc = np.abs(dev) / avgdev
            # the neighbours of a real defect stay near the background
            sc[np.abs(neigh) > 0.5 * np.abs(dev)] = 0.0
            upd = sc > best
            best[upd] = sc[upd]
            bsign[upd] = np.sign(dev[upd]).astype(np.int8)
        score[i], sign[i] = best, bsign
    return score, sign
