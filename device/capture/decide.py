"""Whether a confirmed focus peak is captured: the focus curve and the focus net together.

The curve is the stronger evidence on content the net was not trained on (a microscope
at full sensor resolution, a barcode): the frame at the top of a pass through focus is
the sharpest the optics give, whatever it looks like. So the curve decides, and the net
can only veto a peak when it is *confident* the peak frame is blurred (high certainty,
low p(sharp)) *and* the curve's own evidence is weak (the value rose less than
``strong_rise`` times from the dip before the peak). A net that agrees is noted; a net
that is unsure, or outvoted by a strong rise, is overruled and that is said too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from device.config import CaptureConfig
from device.loop.result import CnnVerdict

# decided_by values, as the capture sidecar and the log show them
CURVE = "curve"                          # no net (or it saw no detail): the peak decides
NET_AGREES = "curve_and_net"             # the net calls the peak frame sharp too
OVER_UNSURE_NET = "curve_over_unsure_net"
OVER_NET = "curve_over_net"              # the net says blurred, the rise says otherwise
NET_VETO = "net_veto"
DECIDERS = (CURVE, NET_AGREES, OVER_UNSURE_NET, OVER_NET, NET_VETO)


@dataclass(frozen=True)
class PeakDecision:
    capture: bool
    decided_by: str
    reason: str
    rise: float                         # peak value / the dip before it
    sharp_prob: Optional[float] = None
    certainty: Optional[float] = None

    def to_json(self) -> dict:
        return {"capture": self.capture, "decided_by": self.decided_by, "reason": self.reason,
                "rise": round(self.rise, 3), "sharp_prob": self.sharp_prob,
                "certainty": self.certainty}


def peak_rise(best_value: float, trough: float) -> float:
    """How many times the focus value grew from the dip to the peak (inf from zero)."""
    return best_value / trough if trough > 0 else float("inf")


def decide_peak(rise: float, cnn: Optional[CnnVerdict], cfg: CaptureConfig) -> PeakDecision:
    """Capture or skip the peak whose best frame the net judged ``cnn`` (None: no net)."""
    if cnn is None or cnn.label == "flat":
        why = "no focus net" if cnn is None else "the net saw no detail in the region"
        return PeakDecision(True, CURVE, f"{why}: the focus curve's peak decides", rise)
    p, c = float(cnn.sharp_prob), float(cnn.certainty)
    common = dict(rise=rise, sharp_prob=round(p, 4), certainty=round(c, 4))
    if p >= cfg.min_sharp_prob:
        return PeakDecision(True, NET_AGREES, f"the net calls it sharp (p {p:.2f})", **common)
    confident = p <= cfg.veto_sharp_prob and c >= cfg.veto_certainty
    if not confident:
        return PeakDecision(True, OVER_UNSURE_NET,
                            f"the net is unsure (p {p:.2f}, certainty {c:.2f}): the curve decides",
                            **common)
    if rise >= cfg.strong_rise:
        return PeakDecision(True, OVER_NET,
                            f"the value rose {rise:.1f}x through focus: the best frame of the pass, "
                            f"although the net calls it {cnn.label} (p {p:.2f})", **common)
    return PeakDecision(False, NET_VETO,
                        f"the net is confident it is {cnn.label} (p {p:.2f}, certainty {c:.2f}) "
                        f"and the value rose only {rise:.1f}x", **common)
