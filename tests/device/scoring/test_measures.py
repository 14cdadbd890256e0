import cv2
import numpy as np
import pytest

from device.errors import InputError
from device.scoring.measures import (MEASURE_NAMES, check_roi, focus_value, refine_peak, score_frame,
                             tile_means)
from device.common.optics import convolve, disc_psf, linear_to_srgb, srgb_to_linear
from tests.conftest import pcb_sweep_paths
from tests.sweep_truth import PCB_SWEEP_TRUTH


def defocus(grey: np.ndarray, radius: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    lin = convolve(srgb_to_linear(grey), disc_psf(radius))
    out = linear_to_srgb(lin) * 255.0
    if noise:
        out = out + np.random.default_rng(seed).normal(0, noise, out.shape)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", MEASURE_NAMES + ("focus",))
def test_every_measure_ranks_increasing_blur_of_a_real_photo(photo_grey, name):
    radii = [0, 1, 2, 4, 8]
    frames = [defocus(photo_grey, r, noise=2.0) for r in radii]
    values = [score_frame(f).focus if name == "focus" else score_frame(f).measures[name]
              for f in frames]
    assert values == sorted(values, reverse=True), values


def test_focus_separates_blur_under_noise_better_than_a_plain_laplacian(photo_grey):
    """Strong noise on a blurred pair: the plain 3x3 Laplacian variance on full-resolution
    pixels is swamped by the noise; the working-scale measure keeps a clear margin."""
    sharp = defocus(photo_grey, 1.5, noise=12.0, seed=1)
    soft = defocus(photo_grey, 3.0, noise=12.0, seed=2)
    ours = focus_value(sharp) / focus_value(soft)
    plain = (cv2.Laplacian(sharp, cv2.CV_32F).var() / cv2.Laplacian(soft, cv2.CV_32F).var())
    assert ours > 1.3
    assert ours - 1 > 2 * (plain - 1), (ours, plain)


def test_focus_value_does_not_depend_on_exposure(photo_grey):
    dim = (photo_grey.astype(np.float32) * 0.5).astype(np.uint8)
    a, b = focus_value(photo_grey), focus_value(dim)
    assert abs(a - b) / a < 0.1


def test_focus_value_is_comparable_across_resolutions(photo_grey):
    """The same scene as a 640x480 lores frame and as 2x and 4x larger frames."""
    base = cv2.resize(defocus(photo_grey, 2.0), (2560, 1920), interpolation=cv2.INTER_CUBIC)
    sizes = [(640, 480), (1280, 960), (2560, 1920)]
    frames = [cv2.resize(base, s, interpolation=cv2.INTER_AREA) for s in sizes]
    v = [focus_value(f) for f in frames]
    assert max(v) / min(v) < 1.25, v
    # The raw (unnormalised, native-scale) sum of gradient energy grows with resolution by
    # orders of magnitude: that is the complaint about the ISP's FocusFoM.
    raw = [score_frame(f, native=True).measures["tenengrad"] * f.size for f in frames]
    assert raw[-1] / raw[0] > 1.5 and raw[-1] / raw[0] > 2 * max(v) / min(v)


def _half_blurred(photo):
    img = photo.copy()
    w = img.shape[1]
    img[:, : w // 2] = defocus(photo, 6)[:, : w // 2]
    return img


def test_roi_measures_only_the_roi(photo_grey):
    img = _half_blurred(photo_grey)
    h, w = img.shape
    left, right = (0, 0, w // 2 - 16, h), (w // 2 + 16, 0, w // 2 - 16, h)
    assert focus_value(img, left) < 0.6 * focus_value(photo_grey, left)
    assert focus_value(img, right) == pytest.approx(focus_value(photo_grey, right), rel=0.1)


def test_tile_map_marks_the_blurred_half(photo_grey):
    ratio = score_frame(_half_blurred(photo_grey), grid=(4, 4)).tile_map / score_frame(
        photo_grey, grid=(4, 4)).tile_map
    assert ratio.shape == (4, 4)
    assert (ratio[:, :2] < 0.6).all(), ratio
    assert (np.abs(ratio[:, 2:] - 1) < 0.15).all(), ratio


def test_tile_means_matches_a_loop():
    v = np.arange(12 * 16, dtype=np.float32).reshape(12, 16)
    got = tile_means(v, (3, 4))
    want = np.array([[v[r * 4:(r + 1) * 4, c * 4:(c + 1) * 4].mean() for c in range(4)] for r in range(3)])
    np.testing.assert_allclose(got, want)


def test_tile_means_of_a_real_frame_drop_the_remainder_and_match_the_block_means(photo_grey):
    """Gradient energy of a real photo (a frame size the grid does not divide) on the
    default grid and an odd one: every tile is the mean of its block, the edge rows and
    columns beyond the last whole tile are left out."""
    from device.scoring.measures import gradient_energy, working_image

    energy = gradient_energy(working_image(photo_grey[:301, :437])[0])
    for rows, cols in ((6, 8), (5, 7), (1, 1)):
        got = tile_means(energy, (rows, cols))
        th, tw = energy.shape[0] // rows, energy.shape[1] // cols
        want = np.array([[energy[r * th:(r + 1) * th, c * tw:(c + 1) * tw].astype(np.float64).mean()
                          for c in range(cols)] for r in range(rows)])
        assert got.shape == (rows, cols) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("roi", [(0, 0, 0, 5), (10, 10, 5, -1), (500, 0, 100, 10), (0, 0, 10, 10_000)])
def test_bad_roi_is_an_input_error(roi):
    with pytest.raises(InputError):
        check_roi(roi, (512, 512))


def test_refine_peak_finds_the_vertex_of_a_parabola():
    xs = np.arange(9)
    i, refined = refine_peak(-(xs - 4.3) ** 2)
    assert i == 4 and refined == pytest.approx(4.3, abs=1e-6)
    assert refine_peak([3, 2, 1]) == (0, 0.0)


@pytest.mark.parametrize("truth", PCB_SWEEP_TRUTH, ids=lambda t: t.name)
def test_real_pcb_focus_sweep_peak(truth):
    frames = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in pcb_sweep_paths()]
    curve = [focus_value(f, truth.roi, native=True) for f in frames]
    best, _ = refine_peak(curve)
    assert best in truth.good, (best, curve)
    assert best == truth.best, f"peak at {best}, judged by eye at {truth.best}: {np.round(curve, 1)}"


def test_scratch_reuse_leaves_kept_results_alone_and_threads_apart(photo_grey):
    """The per-frame temporaries are reused: a result's working image, energy and tile
    map must not change when the next frame is scored, and two threads scoring at once
    (the frame loop and an inspector) must get what each would alone."""
    import threading

    sharp = photo_grey
    blurred = cv2.GaussianBlur(photo_grey, (0, 0), 3.0)
    first = score_frame(sharp, None, (6, 8), native=True)
    kept = (first.energy.copy(), first.work.copy(), first.tile_map.copy(), dict(first.measures))
    second = score_frame(blurred, (50, 60, 200, 150), (6, 8), native=True)
    assert second.measures["laplacian_var"] < first.measures["laplacian_var"] / 2
    np.testing.assert_array_equal(first.energy, kept[0])
    np.testing.assert_array_equal(first.work, kept[1])
    np.testing.assert_array_equal(first.tile_map, kept[2])
    assert first.measures == kept[3]
    alone = {name: score_frame(img, None, (6, 8)).measures for name, img in (("s", sharp), ("b", blurred))}
    got, errors = {}, []

    def worker(name, img):
        try:
            for _ in range(30):
                m = score_frame(img, None, (6, 8)).measures
                if m != alone[name]:
                    errors.append((name, m))
            got[name] = m
        except Exception as exc:        # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=a) for a in (("s", sharp), ("b", blurred))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and got == alone
