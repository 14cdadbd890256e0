"""The real-sweep section of the training report: judged crops of real sweeps, scored
through the device's pooling, side by side with the classic values."""
from __future__ import annotations

import numpy as np

from device.common.preprocess import FOCUS_CLASSES
from device.scoring.focus_net import FocusScorer
from tests.conftest import shared_data
from train import real_sweeps as RS
from train.sweep_truth import BOARD_TEXT, HEATSINK_TOP, SweepTruth


def _constant(p_sharp: float):
    def predict(tiles):
        probs = np.tile([p_sharp, 1 - p_sharp, 0.0], (len(tiles), 1)).astype(np.float32)
        return probs, np.zeros(len(tiles), np.float32)
    return predict


SHORT = SweepTruth(HEATSINK_TOP.name, HEATSINK_TOP.roi, 23, frozenset({22, 23, 24}),
                   HEATSINK_TOP.sweep, blurred=frozenset({0, 1, 46, 47}))


def test_a_net_that_says_sharp_to_everything_ranks_nothing_and_the_classic_values_still_do():
    shared_data("focus_sweeps")
    res = RS.evaluate(_constant(0.9), [SHORT])
    r = res["regions"][SHORT.name]
    assert r["crops"] == 7
    assert r["auc_sharp_prob"] == 0.5
    assert r["accuracy_label"] == round(3 / 7, 3)          # right on the three sharp ones only
    assert r["auc_focus"] == 1.0 and r["auc_tenengrad"] == 1.0
    assert not res["targets_met"]


def test_the_shipped_net_ranks_the_judged_frames_of_a_real_macro_sweep():
    shared_data("focus_sweeps")
    scorer = FocusScorer.from_path(num_threads=1)
    res = RS.evaluate(scorer.predict, [SHORT])
    r = res["regions"][SHORT.name]
    assert r["auc_sharp_prob"] >= 0.95
    sharp = [row["sharp_prob"] for row in r["rows"] if row["sharp"]]
    blurred = [row["sharp_prob"] for row in r["rows"] if not row["sharp"]]
    assert min(sharp) > max(blurred)
    assert {row["label"] for row in r["rows"]} <= set(FOCUS_CLASSES)


def test_the_report_says_why_it_skipped_a_missing_sweep(tmp_path):
    result, lines = RS.report_section(_constant(0.5), shared=tmp_path)
    assert result is None
    assert "Skipped" in lines[1] and "pcb_focus_sweep" in lines[1]


def test_regions_of_a_sweep_the_model_was_trained_on_are_not_pooled_as_blind():
    shared = shared_data("focus_sweeps").parent
    result, lines = RS.report_section(_constant(0.9), regions=[SHORT, RS.REAL_SWEEP_REGIONS[0]],
                                      trained_sweeps=[str(shared / SHORT.sweep)])
    assert result["trained_on"] == [SHORT.sweep]
    assert list(result["regions"]) == [RS.REAL_SWEEP_REGIONS[0].name]
    assert SHORT.name in result["trained_regions"]
    assert any("not blind" in line for line in lines)


def test_on_a_real_pcb_sweep_the_curve_outvotes_the_net_where_the_net_is_wrong():
    """The shipped net calls the sharp frames of the PCB's "SW1" text blurred; rocked
    through focus, the live verdict (net and curve) gets every judged frame right on the
    return pass, and the curve alone does too."""
    shared_data("pcb_focus_sweep")
    scorer = FocusScorer.from_path(num_threads=1)
    net_alone = RS.evaluate(scorer.predict, [BOARD_TEXT])["regions"][BOARD_TEXT.name]
    fused = RS.fused_rows(scorer.predict, BOARD_TEXT)
    curve = RS.fused_rows(None, BOARD_TEXT)
    assert net_alone["accuracy_label"] < 0.9                       # the failure being fixed
    assert RS.accuracy(fused["return_pass"]) == 1.0
    assert RS.accuracy(curve["return_pass"]) == 1.0
    assert {r["decided_by"] for r in fused["return_pass"]} <= {"curve", "net_and_curve"}
    # on the first pass the early frames have no curve yet: the net speaks alone there
    assert fused["first_pass"][0]["decided_by"] in ("net", "net_unsure")
