"""``focus-convert MODEL_DIR --preset int8|float16|float32 [--out FILE]``.

Exit status: 0 converted and passed the parity check; 1 parity check failed (nothing
written); 2 bad input (missing or unreadable model directory, bad option).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys

from device.common.cli_types import print_error
from device.errors import FocusAssistError, ModelError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="focus-convert",
        description="Convert a focus-train model directory to TFLite, check parity with the "
                    "Keras model on the blind evaluation split, and write metadata beside it.")
    p.add_argument("model_dir", metavar="MODEL_DIR",
                   help="focus-train output directory (model.keras, model_card.json)")
    p.add_argument("--preset", choices=("int8", "float16", "float32"), default="int8",
                   help="int8 = full-integer post-training quantization (default)")
    p.add_argument("--out", metavar="FILE",
                   help="output .tflite (default MODEL_DIR/<kind>_<preset>.tflite); the "
                        "metadata goes to FILE with suffix .json, the card to .card.json")
    p.add_argument("--representative", type=int, default=500, metavar="N",
                   help="representative inputs for int8 calibration (default 500)")
    p.add_argument("--eval-n", type=int, default=None, metavar="N",
                   help="limit the evaluation split to N samples (default: all of it)")
    p.add_argument("--seed", type=int, default=None,
                   help="data seed (default: the one in the training card, else 0)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from .pipeline import ParityError, convert_model_dir
    try:
        # TensorFlow's exporter prints progress to stdout; keep stdout for the JSON summary.
        with contextlib.redirect_stdout(sys.stderr):
            meta = convert_model_dir(args.model_dir, args.preset, args.out,
                                     rep_n=args.representative, eval_n=args.eval_n,
                                     seed=args.seed)
    except ParityError as exc:
        print_error("focus-convert", exc)
        return 1
    except (FocusAssistError, ModelError) as exc:
        print_error("focus-convert", exc)
        return 2
    par = meta["parity"]
    print(json.dumps({"kind": meta["kind"], "preset": meta["preset"], "bytes": meta["bytes"],
                      "model_version": meta["model_version"],
                      "keras": par["keras"], "tflite": par["tflite"],
                      "float_tensors": par["float_tensors"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
