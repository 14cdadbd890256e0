"""``focus-train``: train the focus or defect CNN, or evaluate a trained model dir.

    focus-train focus   [--images DIR ...] [--epochs N] [--out DIR] [--seed N] ...
    focus-train defects [--images DIR ...] [--epochs N] [--out DIR] [--seed N] ...
    focus-train evaluate MODEL_DIR [--kaggle DIR] [--tiles N] [--tflite FILE [--report-dir DIR]]

A user error (bad folder, unreadable image, tile larger than the images, bad number)
prints one line on stderr and exits with status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

from device.common.cli_types import nonneg_int, positive_float, positive_int, print_error
from device.errors import FocusAssistError

PROG = "focus-train"


def build_parser() -> argparse.ArgumentParser:
    from .data import DEFAULT_DEAD_LEAVES
    from .fit import DEFAULTS

    p = argparse.ArgumentParser(prog=PROG, description="Train the focus or defect CNN, or evaluate a trained model dir.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{focus,defects,evaluate}")
    for kind, help_ in (("focus", "train the focus net (sharp/defocus/motion + blur px)"),
                        ("defects", "train the pixel-defect heatmap net")):
        d = DEFAULTS[kind]
        s = sub.add_parser(kind, help=help_, description=help_)
        s.add_argument("--images", action="append", default=[], metavar="DIR",
                       help="folder of base photographs (recursive; repeatable); added to the built-in photos")
        if kind == "focus":
            s.add_argument("--sweeps", action="append", default=[], metavar="DIR",
                           help="folder of one real focus sweep (frames in lens order; repeatable), "
                                "labelled by its own focus curves and trained on whole")
            s.add_argument("--sharp-detail-ratio", type=positive_float, default=None, metavar="R",
                           help="a photo tile is a focus example only where its detail is >= R x the "
                                "photo's best (default: train.data.DataConfig's)")
            s.add_argument("--sweep-motion", type=positive_float, default=None, metavar="R",
                           help="share (0..1) of the sweeps' tiles taken from their sharp tiles and shaken "
                                "into motion examples (default 0: none)")
            s.add_argument("--init", default=None, metavar="MODEL",
                           help="start from this model.keras's weights (warm start) instead of random ones")
        else:
            s.add_argument("--candidate-tiles", type=positive_float, default=None, metavar="R",
                           help="share (0..1) of crops cut into tiles centred on the ring rule's "
                                "candidates, where the device asks the net (default 0: a grid)")
            s.set_defaults(sweeps=[], sharp_detail_ratio=None, init=None, sweep_motion=None)
        s.add_argument("--no-builtin", action="store_true",
                       help="do not use scikit-image's bundled photos as base images")
        s.add_argument("--dead-leaves", type=nonneg_int, default=DEFAULT_DEAD_LEAVES, metavar="N",
                       help=f"procedural dead-leaves base images (default {DEFAULT_DEAD_LEAVES}; 0 = none)")
        s.add_argument("--epochs", type=positive_int, default=d["epochs"], help=f"max epochs (default {d['epochs']})")
        s.add_argument("--steps", type=positive_int, default=d["steps_per_epoch"],
                       help=f"batches per epoch (default {d['steps_per_epoch']})")
        s.add_argument("--batch", type=positive_int, default=d["batch"],
                       help=f"tiles per batch per replica (default {d['batch']})")
        s.add_argument("--lr", type=positive_float, default=d["lr"], help=f"learning rate (default {d['lr']})")
        s.add_argument("--patience", type=positive_int, default=d["patience"],
                       help=f"early-stopping patience in epochs (default {d['patience']})")
        s.add_argument("--val-tiles", type=positive_int, default=d["val_tiles"], metavar="N",
                       help=f"validation tiles (default {d['val_tiles']})")
        s.add_argument("--eval-tiles", type=positive_int, default=None, metavar="N",
                       help="held-out test tiles for the final report")
        s.add_argument("--out", default=os.path.join("runs", kind), help=f"output dir (default runs/{kind})")
        s.add_argument("--seed", type=int, default=0, help="seed for split, data and weights (default 0)")
        s.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints")
        s.add_argument("--strategy", choices=("auto", "mirrored", "default"), default="auto",
                       help="tf.distribute strategy: auto = all GPUs when more than one (default)")
        s.add_argument("--tile", type=positive_int, default=None,
                       help="tile side in px (default: the device contract size; change only to experiment)")
        s.add_argument("--width", type=positive_float, default=1.0, help="channel width multiplier")
        s.add_argument("--no-eval", action="store_true", help="skip the evaluation report at the end")
        s.add_argument("--kaggle", default=None, metavar="DIR",
                       help="Kaggle blur samples for the report (default ../shared/data/kaggle_blur_samples)")
        s.add_argument("--quiet", action="store_true", help="no progress bars")
    e = sub.add_parser("evaluate", help="evaluate a trained model dir and write its report")
    e.add_argument("model_dir", help="a dir written by focus-train (model.keras + model_card.json)")
    e.add_argument("--tiles", type=positive_int, default=None, help="held-out test tiles")
    e.add_argument("--kaggle", default=None, metavar="DIR", help="Kaggle blur samples folder")
    e.add_argument("--tflite", default=None, metavar="FILE",
                   help="score this int8 focus .tflite (device interpreter) on MODEL_DIR's split instead "
                        "of MODEL_DIR's model; MODEL_DIR's card is not changed")
    e.add_argument("--report-dir", default=None, metavar="DIR",
                   help="with --tflite: where its report goes (default: beside FILE, FILE without .tflite)")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.command == "evaluate" and args.tflite:
        from .int8_eval import evaluate_tflite

        rep = args.report_dir or os.path.splitext(args.tflite)[0]
        m = evaluate_tflite(args.model_dir, args.tflite, rep, n=args.tiles, kaggle=args.kaggle,
                            progress=not args.quiet)
        print(f"report: {os.path.join(rep, 'report', 'report.md')}")
        _print_headline(m)
        return 0
    if args.command == "evaluate":
        from .evaluate import evaluate_model_dir

        m = evaluate_model_dir(args.model_dir, n=args.tiles, kaggle=args.kaggle, progress=not args.quiet)
        print(f"report: {os.path.join(args.model_dir, 'report', 'report.md')}")
        _print_headline(m)
        return 0
    from .fit import TrainConfig, train

    cfg = TrainConfig(kind=args.command, out=args.out, epochs=args.epochs, steps_per_epoch=args.steps,
                      batch=args.batch, lr=args.lr, patience=args.patience, val_tiles=args.val_tiles,
                      seed=args.seed, images=tuple(args.images), sweeps=tuple(args.sweeps),
                      builtin=not args.no_builtin,
                      dead_leaves=args.dead_leaves, eval_tiles=args.eval_tiles, resume=args.resume,
                      strategy=args.strategy, width=args.width, evaluate=not args.no_eval,
                      kaggle=args.kaggle, progress=not args.quiet, tile=args.tile,
                      sharp_detail_ratio=args.sharp_detail_ratio, init=args.init,
                      sweep_motion=args.sweep_motion,
                      candidate_tiles=getattr(args, "candidate_tiles", None),
                      command=" ".join([PROG] + [shlex.quote(a) for a in argv]))
    card = train(cfg)
    print(f"model: {os.path.join(args.out, 'model.keras')} ({card['training']['wall_time_s']} s)")
    _print_headline(card.get("metrics", {}))
    return 0


def _print_headline(m: dict) -> None:
    keys = ("accuracy_3class", "auc_sharp_vs_blurred", "blur_mae_px", "recall", "precision", "fp_per_mp")
    parts = [f"{k}={m[k]:.4f}" for k in keys if isinstance(m.get(k), (int, float))]
    if "real_photo_checks" in m:
        parts.append(f"real-photo checks {m['real_photo_checks']['right']}/{m['real_photo_checks']['n']}")
    if "kaggle" in m:
        k = m["kaggle"]
        parts.append(f"kaggle sharp/blurred {k['right_sharp_vs_blurred']}/{k['n']}, 3-class {k['right_3class']}/{k['n']}")
    if parts:
        print("metrics: " + ", ".join(parts))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return run(argv)
    except FocusAssistError as exc:
        print_error(PROG, exc)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
