"""The overlay's pure functions, on real photographs rendered through the simulated lens."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from device import overlay as ov
from device.overlay import heatmap
from device.common.colour import parse_colour
from device.config import OverlayConfig, SimConfig, load_config
from device.errors import ConfigError
from device.scoring.measures import score_frame
from device.sources.base import Frame
from device.sources.sim import SimCamera
from device.viewfinder.state import Viewfinder
from tests.device.results import result as scored

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
    values = ov.heat_values(score_frame(half_blurred).tile_map, None, ov.RunningPeak(), 0.0)
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
    cnn = np.array([[-1.0, 0.0, 1.0]], np.float32)          # -1: a tile the net did not score
    values = ov.heat_values(np.ones((1, 3)), cnn, ov.RunningPeak(), 0.0)
    assert np.array_equal(values, [[0.0, 0.0, 1.0]])
    assert np.array_equal(ov.heat_values(np.ones((1, 3)), cnn, ov.RunningPeak(), 0.0, source="cnn"),
                          values)
    assert ov.heat_values(np.ones((1, 3)), None, ov.RunningPeak(), 0.0, source="cnn") is None
    classic = ov.heat_values(np.array([[1.0, 4.0, 2.0]]), cnn, ov.RunningPeak(), 0.0, source="focus")
    assert np.allclose(classic, [[0.25, 1.0, 0.5]])


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
    # the label line names the evidence when the focus curve had a say in it
    for by, head in (("curve", "curve sharp"), ("net_and_curve", "CNN+curve sharp"), ("net", "CNN sharp")):
        assert ov.hud_lines(ov.HudInfo(label="sharp", sharp_prob=0.9, verdict_by=by)) == [f"{head} 0.90"]
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
    result = scored(10.0, tile_map=score_frame(grey).tile_map, roi=(100, 100, 50, 50),
                    defects=[{"x": 5, "y": 5, "kind": "hot"}])
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
    result = scored(1.0, roi=(0, 0, 10, 10))
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
    out = vf.compose(frame, scored(3.0), max_width=1014)
    assert out.shape == (760, 1014, 3)


def test_parse_colour_and_bad_overlay_config():
    assert parse_colour("#ff8000") == (0, 128, 255)
    assert parse_colour("Green") == (0, 255, 0)
    with pytest.raises(ValueError):
        parse_colour("#12345")
    for bad in ({"peaking_share": 0.0}, {"peaking_colour": "plaid"}, {"preview": "hdmi"},
                {"heatmap_source": "both"}, {"zoom_factor": 0.5}, {"peaking_floor": 1.5},
                {"preview_size": [10, 10]}):
        with pytest.raises(ConfigError):
            load_config(overrides={"overlay": bad})
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(overrides={"overlay": {"peeking": True}})


# --- the fast paths agree with plain references ---------------------------------------

@pytest.mark.parametrize("share", [0.005, 0.02, 0.2])
def test_share_quantile_is_the_exact_order_statistic(lens, share):
    rng = np.random.default_rng(5)
    strength = ov.edge_strength(grey_at(lens, 500))
    for values in (strength, rng.exponential(1.0, 76800).astype(np.float32),
                   rng.integers(0, 4, 20000).astype(np.float32),      # heavy ties
                   np.zeros(5000, np.float32), rng.random(37).astype(np.float32)):
        flat = values.ravel()
        k = min(flat.size - 1, max(0, int(round(flat.size * (1 - share)))))
        assert ov.share_quantile(values, share) == np.partition(flat, k)[k]


def test_share_quantile_falls_back_when_the_subsample_misleads():
    # Every 8th pixel (all the subsample sees) is bright, so its bound overshoots.
    values = np.zeros(80000, np.float32)
    values[::8] = np.arange(1, 10001, dtype=np.float32)
    k = int(round(values.size * (1 - 0.1)))
    assert ov.share_quantile(values, 0.1) == np.partition(values, k)[k] == 2001.0


@pytest.mark.parametrize("canvas_hw", [(960, 1280), (768, 1024), (500, 700), (180, 240)])
def test_peaking_blocks_match_a_nearest_neighbour_upscale(lens, canvas_hw):
    mask = ov.peaking_mask(grey_at(lens, 500), ov.PeakingState(), 0.0)
    h, w = canvas_hw
    ys = (np.arange(h) * mask.shape[0]) // h
    xs = (np.arange(w) * mask.shape[1]) // w
    expected = mask[ys][:, xs].astype(bool)
    canvas = np.zeros((h, w, 4), np.uint8)
    idx = ov.draw_peaking(canvas, mask, RED, rgba=True)
    assert idx is not None and np.array_equal(canvas[..., 3] > 0, expected)
    assert (canvas[expected] == (255, 0, 0, 255)).all()


def test_a_dense_mask_is_still_painted_whole():
    mask = np.zeros((240, 320), np.uint8)
    mask[:, ::2] = 1                                    # half the pixels: the dense path
    canvas = np.zeros((480, 640, 3), np.uint8)
    assert ov.draw_peaking(canvas, mask, RED) is None
    big = cv2.resize(mask, (640, 480), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(canvas[..., 2] == 255, big > 0)


def test_drawing_into_a_padded_camera_buffer(lens, photo_bgr):
    # picamera2's MappedArray rows may carry stride padding: the overlay must land in place.
    padded = np.zeros((480, 700, 3), np.uint8)
    view = padded[:, :640]
    view[:] = cv2.resize(photo_bgr, (640, 480))
    plain = view.copy()
    mask = ov.peaking_mask(grey_at(lens, 500), ov.PeakingState(), 0.0)
    layers = ov.Layers(src_shape=(480, 640), peaking=mask, heat=np.linspace(0, 1, 48).reshape(6, 8),
                       roi=(200, 150, 100, 80), zoom=True, hud=ov.HudInfo(focus=3.0, peak=4.0))
    ov.draw_all(view, layers)
    ov.draw_all(plain, layers)
    assert np.array_equal(view, plain) and not padded[:, 640:].any()


def test_heat_blend_matches_the_alpha_formula(photo_bgr):
    levels = ov.heat_levels(np.random.default_rng(2).random((6, 8)))
    levels[0, 0] = 255                                  # the hottest colour over white must not wrap
    for canvas, alpha in itertools.product((cv2.resize(photo_bgr, (640, 480)),
                                            np.full((480, 640, 3), 255, np.uint8)), (0.35, 0.5, 0.8)):
        out = ov.blend_heat(canvas, levels, alpha)
        heat = ov.HeatRows(levels, 480, 640, rgba=False).fill(np.zeros((480, 640, 3), np.uint8))
        expected = canvas * (1 - alpha) + heat * alpha
        assert np.abs(out - expected).max() <= 0.5 + 1e-6
        rgba = ov.HeatRows(levels, 480, 640, rgba=True, a8=7).fill(np.zeros((480, 640, 4), np.uint8))
        assert np.array_equal(rgba[..., 2::-1], heat) and (rgba[..., 3] != 0).all()
        inplace = canvas.copy()
        ov.draw_heatmap(inplace, levels / 255.0, alpha)
        assert np.array_equal(inplace, out)


def test_heat_blend_bands_and_cached_images_agree_and_follow_the_levels(photo_bgr, monkeypatch):
    monkeypatch.setattr(heatmap, "_HEAT_IMAGES", heatmap._HeatImages())
    canvas = cv2.resize(photo_bgr, (640, 480))
    a, b = (ov.heat_levels(np.random.default_rng(s).random((6, 8))) for s in (3, 4))
    banded = ov.blend_heat(canvas, a, 0.35)               # first sight: band by band
    cached = ov.blend_heat(canvas, a, 0.35)               # second: a full image, kept
    assert np.array_equal(banded, cached)
    assert len(heatmap._HEAT_IMAGES._items) == 1
    other = ov.blend_heat(canvas, b, 0.35)                # new levels never reuse the old image
    heat_b = ov.HeatRows(b, 480, 640, rgba=False).fill(np.zeros((480, 640, 3), np.uint8))
    assert np.abs(other - (canvas * 0.65 + heat_b * 0.35)).max() <= 0.5 + 1e-6
    assert not np.array_equal(other, cached)


def test_zoom_from_a_larger_picture_shows_its_finer_pixels(photo_bgr):
    main = cv2.resize(photo_bgr, (1280, 960))           # the main stream behind a 640x480 layer
    canvas = np.zeros((480, 640, 4), np.uint8)
    layers = ov.Layers(src_shape=(480, 640), roi=(300, 200, 40, 40), zoom=True)
    ov.draw_all(canvas, layers, main, ov.Style(zoom_factor=2.0, zoom_size=0.25), rgba=True)
    iw, ih = ov.inset_size(canvas.shape, 0.25)
    X, Y = 640 - iw - 4, 4
    crop = ov.zoom_crop(main, layers.roi, (480, 640), canvas.shape, 2.0, 0.25)
    assert crop.shape[:2] == (2 * 60, 2 * 80)            # twice the pixels of the 640-wide region
    expected = cv2.cvtColor(cv2.resize(crop, (iw, ih), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGBA)
    assert np.array_equal(canvas[Y:Y + ih, X:X + iw], expected)


# --- the persistent RGBA layer never shows a stale pixel ------------------------------

def _frames_for_the_layer(lens):
    """Frames whose layers differ in every way the cache could get wrong."""
    masks = [ov.peaking_mask(grey_at(lens, p), ov.PeakingState(), 0.0) for p in (500, 530)]
    dense = np.zeros_like(masks[0])
    dense[::2] = 1
    heat_a = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    heat_b = heat_a.copy()
    heat_b[2, 3] = 0.0                                   # one tile changes level
    hud = ov.HudInfo(focus=12.0, peak=20.0, label="sharp", captures=3, fps=29.5)
    hot = [{"x": 100, "y": 80, "kind": "hot"}, {"x": 600, "y": 400, "kind": "dust"}]
    L = ov.Layers
    return [
        L((480, 640), peaking=masks[0], roi=(200, 150, 240, 180), defects=hot, zoom=True, hud=hud),
        L((480, 640), peaking=masks[1], roi=(40, 300, 100, 80), defects=hot[:1], zoom=True),
        L((480, 640), peaking=masks[1], heat=heat_a, defects=hot[1:], hud=hud),
        L((480, 640), peaking=masks[0], heat=heat_a, roi=(10, 10, 50, 50), zoom=True),
        L((480, 640), peaking=masks[0], heat=heat_b, roi=(10, 10, 50, 50)),
        L((480, 640), peaking=dense, heat=heat_b, hud=hud),
        L((480, 640), peaking=masks[1], heat=heat_b, defects=hot),
        L((480, 640), heat=heat_b),
        L((480, 640), peaking=masks[0], hud=ov.HudInfo(focus=1.0)),
        L((480, 640)),
    ]


@pytest.mark.parametrize("size", [(640, 480), (1024, 768), (2028, 1520)])
def test_the_persistent_rgba_layer_equals_a_fresh_one_every_frame(lens, photo_bgr, size):
    picture = cv2.resize(photo_bgr, (640, 480))
    layer = ov.RgbaLayer(size)
    style = ov.Style(peaking_colour=(255, 0, 255))
    for i, layers in enumerate(_frames_for_the_layer(lens)):
        fresh = ov.rgba_layer(size, layers, picture, style)
        kept = layer.render(layers, picture, style)
        assert np.array_equal(kept, fresh), f"frame {i} differs from a fresh layer"


def test_the_rgba_layer_clears_a_marker_that_went_away():
    layer = ov.RgbaLayer((640, 480))
    marked = ov.Layers(src_shape=(480, 640), defects=[{"x": 320, "y": 240, "kind": "hot"}])
    out = layer.render(marked)
    assert out[220:261, 300:341, 3].any()
    out = layer.render(ov.Layers(src_shape=(480, 640)))
    assert not out.any()


def test_the_rgba_layer_heat_map_follows_the_tile_map():
    layer = ov.RgbaLayer((640, 480))
    cold = np.zeros((6, 8), np.float32)
    first = layer.render(ov.Layers(src_shape=(480, 640), heat=cold)).copy()
    hot = cold.copy()
    hot[5, 7] = 1.0
    second = layer.render(ov.Layers(src_shape=(480, 640), heat=hot))
    lut = ov.heat_lut(True)
    assert tuple(first[440, 600, :3]) == tuple(lut[0]) and tuple(second[440, 600, :3]) == tuple(lut[255])
    assert np.array_equal(first[:400], second[:400])     # the other tiles stay as they were


def test_the_rgba_layer_zoom_follows_the_roi(photo_bgr):
    picture = cv2.resize(photo_bgr, (640, 480))
    layer = ov.RgbaLayer((640, 480))
    insets = []
    for roi in ((100, 100, 40, 40), (450, 300, 40, 40)):
        layers = ov.Layers(src_shape=(480, 640), roi=roi, zoom=True)
        out = layer.render(layers, picture)
        assert np.array_equal(out, ov.rgba_layer((640, 480), layers, picture))
        insets.append(out[4:100, 420:630].copy())
    assert not np.array_equal(insets[0], insets[1])


def test_the_viewfinder_reuses_one_layer_per_size(lens):
    colour = lens.render(500)
    frame = Frame(grey=cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), color=colour, timestamp=1.0, index=0)
    vf = Viewfinder(OverlayConfig())
    one = scored(1.0)
    vf.on_frame(frame, one)
    a = vf.overlay_rgba(frame, one, (640, 480))
    b = vf.overlay_rgba(frame, one, (640, 480))
    c = vf.overlay_rgba(frame, one, (320, 240))
    assert a is b and c.shape == (240, 320, 4)


def test_compose_bgr_blends_straight_into_a_new_picture(lens, photo_bgr):
    picture = cv2.resize(photo_bgr, (640, 480))
    keep = picture.copy()
    mask = ov.peaking_mask(grey_at(lens, 500), ov.PeakingState(), 0.0)
    for heat in (None, np.linspace(0, 1, 48).reshape(6, 8)):
        layers = ov.Layers(src_shape=(480, 640), peaking=mask, heat=heat, roi=(300, 200, 60, 60),
                           zoom=True, hud=ov.HudInfo(focus=2.0))
        out = ov.compose_bgr(picture, layers)
        assert np.array_equal(out, ov.draw_all(picture.copy(), layers, picture))
        assert np.array_equal(picture, keep)


def test_the_8_bit_gradient_equals_the_scorers_float_gradient(lens):
    from device.scoring.measures import working_image

    grey = grey_at(lens, 500)
    fast = ov.edge_strength(grey)
    shared = ov.edge_strength(grey, working_image(grey, native=True)[0])
    assert fast.dtype == shared.dtype == np.float32
    assert np.allclose(fast, shared, rtol=1e-5, atol=1e-4)
