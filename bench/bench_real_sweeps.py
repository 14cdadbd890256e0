"""Benchmark: the sharpness verdict on ROI crops of the real focus sweeps beside the project.

Every judged region of ``train/sweep_truth.py`` (the PCB sweep, the Pi board and USB
dongle macro sweeps): its judged-sharp frames against its judged-blurred ones, judged by
the shipped int8 model through the one shared evaluation (``train.real_sweeps``, which
``focus-train evaluate`` runs on the float model), side by side with the classic ``focus``
value and Tenengrad on the same crops. Two tile budgets: the live loop's (what the HUD and
capture-when-sharp see) and ``focus-assist score``'s.

    python bench/bench_real_sweeps.py [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.scoring.focus_net import FocusScorer  # noqa: E402
from device.scoring.pooling import FocusNetOptions  # noqa: E402
from train import real_sweeps as RS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    missing = [r.sweep for r in RS.REAL_SWEEP_REGIONS if not (RS.SHARED_DATA / r.sweep).is_dir()]
    if missing:
        print(f"bench_real_sweeps: error: ../shared/data/{missing[0]} is absent", file=sys.stderr)
        return 2
    scorer = FocusScorer.from_path(num_threads=1)
    out = {}
    for name, opts in (("live", RS.LIVE_OPTIONS), ("score", FocusNetOptions())):
        res = RS.evaluate(scorer.predict, opts=opts)
        out[name] = res
        print(f"\n{name}: at most {opts.max_tiles} tiles per crop")
        print("\n".join(RS.table(res)))
    # The live verdict: the net and the focus curve, the sweep rocked through focus and back.
    for name, predict in (("live verdict (net and curve)", scorer.predict), ("curve alone", None)):
        res = RS.evaluate_fused(predict)
        out[name] = res
        print(f"\n{name}: each sweep played through focus and back, {RS.PLAY_DT_S} s a frame")
        print("\n".join(RS.fused_table(res)))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
