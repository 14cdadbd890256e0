"""Star mode on the overlay: circles around detected stars, the HUD's star lines."""
from __future__ import annotations

import math

import numpy as np

from device.overlay import ELEMENTS, HudInfo, Layers, RgbaLayer, StarLine, compose_bgr, draw_stars, hud_lines


def test_star_circles_land_around_the_stars_scaled_to_the_canvas():
    canvas = np.zeros((480, 640, 3), np.uint8)            # shown at twice the scored size
    boxes = draw_stars(canvas, [(100.0, 50.0, 5.0), (200.0, 150.0, 8.0)], (240, 320))
    assert len(boxes) == 2
    g = canvas[:, :, 1]
    assert g[100, 200] == 0 and g[300, 400] == 0            # the stars themselves stay clear
    assert g[100, 210] > 0 and g[100, 190] > 0              # ring of radius 10 around (200, 100)
    assert g[300, 416] > 0 and g[284, 400] > 0              # ring of radius 16 around (400, 300)
    ys, xs = np.nonzero(g)                                   # the boxes cover what was drawn
    inside = np.zeros(len(xs), bool)
    for x0, y0, x1, y1 in boxes:
        inside |= (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    assert inside.all()


def test_star_circles_are_an_overlay_element_off_by_default_and_restored_in_the_layer():
    from device.config import OverlayConfig

    assert "stars" in ELEMENTS and OverlayConfig().stars is False
    layer = RgbaLayer((320, 240))
    drawn = layer.render(Layers(src_shape=(240, 320), stars=[(60.0, 60.0, 6.0)])).copy()
    assert drawn[:, :, 3].any()
    after = layer.render(Layers(src_shape=(240, 320)))
    assert not after[:, :, 3].any()                         # the next frame without stars is clean


def test_hud_shows_star_sizes_the_held_minimum_and_the_status():
    ok = StarLine(hfr=2.345, fwhm=4.5, count=37, min_hfr=1.5)
    assert hud_lines(HudInfo(stars=ok)) == ["HFR 2.35  min 1.50 px", "FWHM 4.50 px  37 stars"]
    cloudy = StarLine(hfr=math.nan, fwhm=math.nan, count=3, min_hfr=1.5,
                      status="clouds: star count fell from 40 to 3")
    lines = hud_lines(HudInfo(stars=cloudy, fps=10.0))
    assert lines == ["HFR -  min 1.50 px", "FWHM - px  3 stars",
                     "clouds: star count fell from 40 to 3", "10.0 fps"]
    assert hud_lines(HudInfo(focus=3.0)) == ["focus 3.0"]       # star mode off: no star lines


def test_composed_picture_carries_the_star_lines():
    picture = np.zeros((240, 320, 3), np.uint8)
    plain = compose_bgr(picture, Layers(src_shape=(240, 320), hud=HudInfo(focus=1.0)))
    starred = compose_bgr(picture, Layers(src_shape=(240, 320), hud=HudInfo(
        focus=1.0, stars=StarLine(1.5, 3.0, 12, 1.4))))
    assert (starred != plain).any() and not picture.any()
