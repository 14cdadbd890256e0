"""The evaluation report's plots (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from device.common.preprocess import FOCUS_CLASSES


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_confusion(cm: np.ndarray, labels, title: str, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(curves: dict, kind: str, title: str, path: Path) -> None:
    """``curves`` maps a label to (x, y); kind 'roc' or 'pr' sets the axes."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.4, 3.8))
    for label, (x, y) in curves.items():
        ax.plot(x, y, label=label, lw=1.4)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
    else:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning(history: dict, path: Path) -> bool:
    keys = [k for k in history if k != "epoch" and not k.startswith("val_") and k != "learning_rate"]
    if not keys:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.0), squeeze=False)
    for ax, k in zip(axes[0], keys):
        ep = np.arange(1, len(history[k]) + 1)
        ax.plot(ep, history[k], label="train")
        if f"val_{k}" in history:
            ax.plot(ep[:len(history[f'val_{k}'])], history[f"val_{k}"], label="val")
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_blur(true: np.ndarray, pred: np.ndarray, cls: np.ndarray, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    for k, name in enumerate(FOCUS_CLASSES):
        m = cls == k
        ax.scatter(true[m], pred[m], s=3, alpha=0.4, label=name)
    hi = max(float(true.max(initial=1)), float(pred.max(initial=1)))
    ax.plot([0, hi], [0, hi], "k:", lw=0.8)
    ax.set_xlabel("true blur (px)")
    ax.set_ylabel("predicted blur (px)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_froc(sweep, bsweep, path: Path, title: str, target_fp_per_mp: float) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.4, 3.6))
    ax.plot([r["fp_per_mp"] for r in sweep], [r["recall"] for r in sweep], "o-", ms=2, label="defect_net")
    ax.plot([r["fp_per_mp"] for r in bsweep], [r["recall"] for r in bsweep], "s-", ms=2, label="avgDev rule")
    ax.axvline(target_fp_per_mp, color="k", ls=":", lw=0.8)
    ax.axhline(0.95, color="k", ls=":", lw=0.8)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("false detections per megapixel")
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title(f"FROC, {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
