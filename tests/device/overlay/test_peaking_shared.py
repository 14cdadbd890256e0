"""Peaking reuses the classic scorer's working image and gradient energy
(``FrameResult.working``) and lights exactly the pixels it lit computing them itself."""
import cv2
import numpy as np
import pytest

from device.overlay import PeakingState, peaking_mask
from device.overlay.peaking import shared_strength
from device.scoring.classic import ClassicScorer
from device.sources.base import Frame
from tests.conftest import shared_data


def _sweep_greys() -> list:
    folder = shared_data("focus_sweeps/pi_board_macro")
    out = []
    for i in range(0, 49, 4):          # the top half (above the join), lores-sized
        img = cv2.imread(str(folder / f"pi_board_macro_{i:03d}.jpg"), cv2.IMREAD_GRAYSCALE)[:540, 240:960]
        out.append(cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA))
    return out


def test_shared_and_own_peaking_light_the_same_pixels_through_a_real_sweep():
    scorer = ClassicScorer()
    own, reused = PeakingState(), PeakingState()
    lit = 0
    for i, grey in enumerate(_sweep_greys()):
        result = scorer.score(Frame(grey=grey, timestamp=i / 30, index=i))
        assert result.working is not None
        a = peaking_mask(grey, own, i / 30)
        b = peaking_mask(grey, reused, i / 30, shared=result.working)
        np.testing.assert_array_equal(a, b)
        lit += int(a.sum())
    assert lit > 0                                   # the in-focus frames do light up
    assert reused.level.value == pytest.approx(own.level.value, rel=1e-6)
    assert reused.noise == pytest.approx(own.noise, rel=1e-6)


def test_odd_sized_photo_is_shared_too(photo_grey):
    grey = np.ascontiguousarray(photo_grey[:301, :417])
    result = ClassicScorer().score(Frame(grey=grey, timestamp=0.0, index=0))
    a = peaking_mask(grey, PeakingState(), 0.0)
    b = peaking_mask(grey, PeakingState(), 0.0, shared=result.working)
    np.testing.assert_array_equal(a, b)


def test_frames_bigger_than_lores_are_not_shared(photo_grey):
    # 512 px short side: the scorer resamples to 480 first, not peaking's scale.
    result = ClassicScorer().score(Frame(grey=photo_grey, timestamp=0.0, index=0))
    assert result.working is None
    assert shared_strength(photo_grey, result.working) is None
    small = ClassicScorer().score(Frame(grey=photo_grey[:200, :200], timestamp=0.0, index=0))
    assert shared_strength(photo_grey, small.working) is None      # another frame's: refused
