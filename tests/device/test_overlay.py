"""The overlay's pure functions, on real photographs rendered through the simulated lens."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from device import overlay as ov
from device.config import OverlayConfig, SimConfig, load_config
from device.errors import ConfigError
from device.measures import score_frame
from device.sources.base import Frame
from device.sources.sim import SimCamera
from device.viewfinder import Viewfinder

RED = (0, 0, 255)


@pytest.fixture(scope="module")
def lens():
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    return SimCamera(SimConfig(scene="mosaic", seed=3, best_position=500, start_position=500))


def grey_at(cam, pos):
    return cv2.cvtColor(cam.render(pos), cv2.COLOR_BGR2GRAY)


def lit_share(mask):
    return float(mask.mean())


# --- peaking -------------------------------------------------------------------------

def test_peaking_lights_about_the_configured_share_of_a_sharp_frame(lens):
    for share in (0.005, 0.02):
        state = ov.PeakingState()
        mask = ov.peaking_mask(grey_at(lens, 500), state, 0.0, ov.PeakingParams(share=share))
        assert mask.dtype == np.uint8 and mask.shape == (240, 320)
        assert 0.6 * share <= lit_share(mask) <= 1.4 * share


def test_peaking_marks_real_edges_not_noise(lens):
    grey = grey_at(lens, 500)
    mask = ov.peaking_mask(grey, ov.PeakingState(), 0.0).astype(bool)
    # Where peaking lights, the noiseless photo has strong gradients.
    clean = cv2.cvtColor(lens.render(500), cv2.COLOR_BGR2GRAY)
    strength = ov.edge_strength(cv2.GaussianBlur(clean, (3, 3), 0))
    assert np.median(strength[mask]) > 4 * np.median(strength)


def test_peaking_fades_on_a_defocused_frame_after_the_peak(lens):
    state = ov.PeakingState()
    ov.peaking_mask(grey_at(lens, 500), state, 0.0)          # the user turned through focus
    sharp_share = lit_share(ov.peaking_mask(grey_at(lens, 500), state, 0.1))
    blurred_share = lit_share(ov.peaking_mask(grey_at(lens, 580), state, 0.2))   # 8 px blur
    assert sharp_share > 0.003
    assert blurred_share < 0.0005
    # ...but a frame near focus still shows some peaking (the cue is graded, not binary).
    near = lit_share(ov.peaking_mask(grey_at(lens, 520), state, 0.3))
    assert near > 0.001


def test_peaking_level_decays_so_a_new_scene_takes_over(lens):
    state = ov.PeakingState(level=ov.RunningPeak(half_life_s=1.0))
    ov.peaking_mask(grey_at(lens, 500), state, 0.0)
    early = lit_share(ov.peaking_mask(grey_at(lens, 640), state, 0.1))
    late = lit_share(ov.peaking_mask(grey_at(lens, 640), state, 30.0))
    assert late > early and late > 0.003


def test_peaking_ignores_pure_sensor_noise():
    cam = SimCamera(SimConfig(scene="flat", seed=1, read_noise=6.0))
    state = ov.PeakingState()
    mask = ov.peaking_mask(grey_at(cam, 0), state, 0.0)
    assert lit_share(mask) < 0.0002


def test_peaking_threshold_does_not_depend_on_exposure(lens):
    grey = grey_at(lens, 500)
    dark = (grey.astype(np.float32) * 0.5).astype(np.uint8)
    a = ov.peaking_mask(grey, ov.PeakingState(), 0.0).astype(bool)
    b = ov.peaking_mask(dark, ov.PeakingState(), 0.0).astype(bool)
    assert abs(a.mean() - b.mean()) < 0.002
    assert (a & b).sum() > 0.5 * a.sum()


def test_draw_peaking_scales_the_mask_to_a_larger_display():
    mask = np.zeros((240, 320), np.uint8)
    mask[100, 200] = 1
    canvas = np.zeros((960, 1280, 3), np.uint8)
    ov.draw_peaking(canvas, mask, RED)
    ys, xs = np.nonzero(canvas[..., 2])
    assert ys.min() == 400 and ys.max() == 403 and xs.min() == 800 and xs.max() == 803
    assert canvas[..., :2].max() == 0


# --- heat map, boxes, zoom, HUD ------------------------------------------------------

def test_heat_map_is_hot_where_the_photo_is_sharp(lens):
    grey = grey_at(lens, 500)
    half_blurred = grey.copy()
    half_blurred[:, 320:] = cv2.GaussianBlur(grey[:, 320:], (0, 0), 6)
    result = {"tile_map": score_frame(half_blurred).tile_map}
    values = ov.heat_values(result, ov.RunningPeak(), 0.0)
    assert values[:, :4].mean() > 3 * values[:, 4:].mean()
    canvas = np.full((480, 640, 3), 128, np.uint8)
    ov.draw_heatmap(canvas, values, 0.5)
    lut = ov.heat_lut(False)
    assert lut[255][2] > lut[255][0] and lut[0][0] > lut[0][2]    # hot is red, cold is blue
    for r, c in ((0, 0), (3, 2), (5, 7)):                           # each tile: 50% blend of its colour
        y, x = r * 80 + 40, c * 80 + 40
        level = int(np.float32(np.round(values[r, c] * (ov.HEAT_LEVELS - 1)) * (255.0 / (ov.HEAT_LEVELS - 1))))
        expect = 0.5 * 128 + 0.5 * lut[level].astype(float)
        assert np.allclose(canvas[y, x], expect, atol=1.5)


def test_heat_map_prefers_the_cnn_probabilities_when_present():
    cnn = np.array([[0.0, 1.0]], np.float32)
    values = ov.heat_values({"tile_map": np.ones((1, 2)), "cnn_tile_map": cnn}, ov.RunningPeak(), 0.0)
    assert np.array_equal(values, cnn)
    classic = ov.heat_values({"tile_map": np.array([[1.0, 4.0]]), "cnn_tile_map": cnn},
                             ov.RunningPeak(), 0.0, source="focus")
    assert np.allclose(classic, [[0.25, 1.0]])


def test_zoom_region_follows_the_roi_and_stays_inside_the_frame():
    x, y, w, h = ov.zoom_region((100, 100, 40, 40), (480, 640), (960, 1280), 4.0, 400, 300)
    assert (w, h) == (100, 75)
    assert abs((x + w / 2) - 240) <= 1 and abs((y + h / 2) - 240) <= 1
    x, y, w, h = ov.zoom_region((600, 440, 40, 40), (480, 640), (480, 640), 2.0, 200, 150)
    assert x + w <= 640 and y + h <= 480


def test_zoom_inset_shows_magnified_real_pixels(photo_bgr):
    picture = cv2.resize(photo_bgr, (640, 480))
    canvas = picture.copy()
    ov.draw_zoom(canvas, picture, None, (480, 640), factor=4.0, size=0.25)
    iw, ih = 160, 120
    x0, y0, rw, rh = ov.zoom_region(None, (480, 640), (480, 640), 4.0, iw, ih)
    X, Y = 640 - iw - 4, 4
    inset = canvas[Y:Y + ih, X:X + iw]
    expected = cv2.resize(picture[y0:y0 + rh, x0:x0 + rw], (iw, ih), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(inset, expected)


def test_peak_hold_keeps_the_best_value_until_reset():
    hold = ov.PeakHold()
    for v in (1.0, 5.0, 3.0):
        hold.update(v)
    assert hold.peak == 5.0 and hold.value == 3.0 and hold.ratio == pytest.approx(0.6)
    hold.update(float("nan"))
    assert hold.peak == 5.0
    hold.reset()
    assert hold.peak == 0.0


def test_hud_lists_only_known_facts_and_colours_the_bar_by_peak_distance():
    lines = ov.hud_lines(ov.HudInfo(focus=12.0, peak=20.0, label="sharp", sharp_prob=0.9,
                                    captures=3, fps=29.5))
    assert lines == ["focus 12.0  peak 20.0", "CNN sharp 0.90", "captures 3", "29.5 fps"]
    assert ov.hud_lines(ov.HudInfo()) == []
    assert ov.bar_colour(1.0) == (0, 220, 0) and ov.bar_colour(0.5) == (0, 0, 230)


def test_hud_draws_in_the_top_left_corner_only(photo_bgr):
    canvas = cv2.resize(photo_bgr, (640, 480))
    before = canvas.copy()
    ov.draw_hud(canvas, ov.HudInfo(focus=10.0, peak=12.0, fps=30.0))
    changed = np.any(canvas != before, axis=2)
    ys, xs = np.nonzero(changed)
    assert ys.max() < 100 and xs.max() < 220


def test_defect_markers_and_roi_box_land_at_scaled_positions():
    canvas = np.zeros((960, 1280, 3), np.uint8)
    ov.draw_defects(canvas, [{"x": 100, "y": 50, "kind": "hot", "confidence": 0.9}, {"bad": 1}], (480, 640))
    assert canvas[100 - 20:100 + 21, 200 - 20:200 + 21].any()      # circle around (200, 100)
    assert not canvas[100, 200].any()                             # ...not a filled blob
    canvas[:] = 0
    ov.draw_roi(canvas, (10, 20, 30, 40), (480, 640))
    ys, xs = np.nonzero(canvas.any(axis=2))
    assert abs(xs.min() - 20) <= 1 and abs(ys.min() - 40) <= 1
    assert abs(xs.max() - 79) <= 1 and abs(ys.max() - 119) <= 1


# --- the whole overlay ---------------------------------------------------------------

def test_rgba_layer_is_transparent_except_where_drawn_and_in_rgb_order():
    mask = np.zeros((240, 320), np.uint8)
    mask[10, 10] = 1
    layers = ov.Layers(src_shape=(480, 640), peaking=mask)
    rgba = ov.rgba_layer((1024, 768), layers)
    assert rgba.shape == (768, 1024, 4) and rgba.dtype == np.uint8
    lit = rgba[..., 3] > 0
    assert 0 < lit.sum() <= 16
    assert tuple(rgba[lit][0]) == (255, 0, 0, 255)          # red, opaque, in RGBA order


def test_compose_never_touches_the_frame(lens):
    colour = lens.render(500)
    grey = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    frame = Frame(grey=grey, color=colour, timestamp=1.0, index=0)
    keep_c, keep_g = colour.copy(), grey.copy()
    vf = Viewfinder(OverlayConfig(heatmap=True, zoom=True))
    result = {"focus": 10.0, "tile_map": score_frame(grey).tile_map, "roi": [100, 100, 50, 50],
              "defects": [{"x": 5, "y": 5, "kind": "hot"}]}
    vf.on_frame(frame, result)
    out = vf.compose(frame, result)
    assert out.shape == colour.shape and not np.array_equal(out, colour)
    vf.overlay_rgba(frame, result, (640, 480))
    assert np.array_equal(colour, keep_c) and np.array_equal(grey, keep_g)


def test_every_element_can_be_switched_off(lens):
    colour = lens.render(500)
    grey = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    frame = Frame(grey=grey, color=colour, timestamp=1.0, index=0)
    vf = Viewfinder(OverlayConfig())
    vf.set_toggles({name: False for name in ov.ELEMENTS})
    result = {"focus": 1.0, "tile_map": np.ones((2, 2)), "roi": [0, 0, 10, 10]}
    assert np.array_equal(vf.compose(frame, result), colour)
    with pytest.raises(KeyError):
        vf.set_toggles({"sparkles": True})
    with pytest.raises(TypeError):
        vf.set_toggles({"peaking": "yes"})


def test_compose_scales_a_large_display_frame_down_for_the_stream(lens):
    colour = cv2.resize(lens.render(500), (2028, 1520))
    grey = cv2.cvtColor(lens.render(500), cv2.COLOR_BGR2GRAY)
    frame = Frame(grey=grey, color=colour, timestamp=1.0, index=0)
    vf = Viewfinder(OverlayConfig())
    out = vf.compose(frame, {"focus": 3.0}, max_width=1014)
    assert out.shape == (760, 1014, 3)


def test_parse_colour_and_bad_overlay_config():
    assert ov.parse_colour("#ff8000") == (0, 128, 255)
    assert ov.parse_colour("Green") == (0, 255, 0)
    with pytest.raises(ValueError):
        ov.parse_colour("#12345")
    for bad in ({"peaking_share": 0.0}, {"peaking_colour": "plaid"}, {"preview": "hdmi"},
                {"heatmap_source": "both"}, {"zoom_factor": 0.5}, {"peaking_floor": 1.5},
                {"preview_size": [10, 10]}):
        with pytest.raises(ConfigError):
            load_config(overrides={"overlay": bad})
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(overrides={"overlay": {"peeking": True}})
