"""The peak decision alone: the curve decides unless a confident net meets a weak rise."""
import pytest

from device.capture.decide import (CURVE, NET_AGREES, NET_VETO, OVER_NET, OVER_UNSURE_NET,
                                   decide_peak, peak_rise)
from device.config import CaptureConfig
from tests.device.results import verdict

CFG = CaptureConfig()        # min_sharp_prob 0.5, veto at p <= 0.2 with certainty >= 0.5, strong rise 4x


def _net(p, certainty=0.8, label=None):
    return verdict(p, label=label, certainty=certainty)


@pytest.mark.parametrize("rise,net,capture,by", [
    (2.0, None, True, CURVE),
    (2.0, _net(0.0, label="flat"), True, CURVE),
    (2.0, _net(0.7), True, NET_AGREES),
    (2.0, _net(0.5), True, NET_AGREES),                  # min_sharp_prob is inclusive
    (2.0, _net(0.3), True, OVER_UNSURE_NET),             # p not low enough to veto
    (2.0, _net(0.05, certainty=0.3), True, OVER_UNSURE_NET),
    (2.0, _net(0.05), False, NET_VETO),
    (3.99, _net(0.2), False, NET_VETO),
    (4.0, _net(0.05), True, OVER_NET),
    (float("inf"), _net(0.01, certainty=1.0), True, OVER_NET),
])
def test_decide_peak(rise, net, capture, by):
    d = decide_peak(rise, net, CFG)
    assert (d.capture, d.decided_by) == (capture, by), d.reason
    assert d.reason and d.to_json()["decided_by"] == by


def test_peak_rise():
    assert peak_rise(100.0, 25.0) == 4.0
    assert peak_rise(1.0, 0.0) == float("inf")
