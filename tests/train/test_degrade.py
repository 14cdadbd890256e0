"""Every degradation does what it claims, checked on a real photograph."""
import cv2
import numpy as np
import pytest

from device.common.optics import disc_psf, line_psf
from train import degrade
from train.baselines import tenengrad


def test_all_psfs_sum_to_one():
    rng = np.random.default_rng(0)
    for r in (0.0, 0.7, 2.0, 5.5, 8.0):
        assert disc_psf(r, aberration=0.1, angle=0.3).sum() == pytest.approx(1.0, abs=1e-5)
    for length in (0.5, 3.0, 16.0):
        assert line_psf(length, 0.7).sum() == pytest.approx(1.0, abs=1e-5)
    for extent in (0.2, 1.5, 4.0, 8.0):
        k = degrade.shake_psf(extent, rng)
        assert k.sum() == pytest.approx(1.0, abs=1e-5)
        assert (k >= 0).all()


def test_shake_psf_extent_matches_label():
    k = degrade.shake_psf(5.0, np.random.default_rng(1))
    ys, xs = np.nonzero(k > 1e-4)
    c = (k.shape[0] - 1) / 2
    r = np.hypot(ys - c, xs - c).max()
    assert 3.0 <= r <= 7.5  # trajectory within ~extent of the centre (centroid ≠ box centre)


def _defocus(img, r, rng):
    lab = degrade.FocusLabel(cls="defocus" if r >= 0.5 else "sharp", blur_px=r)
    return degrade.degrade_focus(img, lab, rng)


def test_larger_defocus_radius_lowers_tenengrad(camera_grey):
    crop = camera_grey[100:356, 100:356]
    values = [tenengrad(_defocus(crop, r, np.random.default_rng(0))) for r in (0.0, 1.0, 2.0, 4.0, 8.0)]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_motion_blur_is_directional(camera_grey):
    crop = camera_grey[100:356, 100:356]
    lab = degrade.FocusLabel(cls="motion", blur_px=4.0)
    rng = np.random.default_rng(0)
    lin = degrade.srgb_to_linear(crop)
    grad = lambda im, dx, dy: np.abs(cv2.Sobel(im, cv2.CV_32F, dx, dy)).mean()
    horiz = degrade.convolve(lin, line_psf(8.0, 0.0))        # horizontal streak
    vert = degrade.convolve(lin, line_psf(8.0, np.pi / 2))   # vertical streak
    # a horizontal streak smears horizontal gradients much more than vertical ones, and
    # vice versa
    assert grad(horiz, 1, 0) < 0.7 * grad(vert, 1, 0)
    assert grad(vert, 0, 1) < 0.7 * grad(horiz, 0, 1)
    out = degrade.degrade_focus(crop, lab, rng)
    assert lab.kind in ("line", "shake") and out.shape == crop.shape
    assert tenengrad(out) < tenengrad(crop)


def test_sensor_noise_grows_as_light_falls():
    flat = np.full((128, 128), 0.5, np.float32)
    stds = [degrade.add_sensor_noise(flat, p, 0.0, np.random.default_rng(0)).std() for p in (20000, 2000, 200)]
    assert stds[0] < stds[1] < stds[2]
    # shot noise: std ≈ sqrt(signal / photons)
    assert stds[1] == pytest.approx(np.sqrt(0.5 / 2000), rel=0.1)
    # read noise alone is signal-independent
    dark = degrade.add_sensor_noise(np.full((128, 128), 0.2, np.float32), 0, 0.01, np.random.default_rng(0))
    assert dark.std() == pytest.approx(0.01, rel=0.1)


def test_noise_is_added_after_blur(camera_grey):
    # With heavy blur and strong noise the output must still be noisy: noise is not blurred away.
    crop = camera_grey[:128, :128]
    lab = degrade.FocusLabel(cls="defocus", blur_px=8.0, photons=100.0)
    noisy = degrade.degrade_focus(crop, lab, np.random.default_rng(0)).astype(np.float32)
    lab2 = degrade.FocusLabel(cls="defocus", blur_px=8.0)
    clean = degrade.degrade_focus(crop, lab2, np.random.default_rng(0)).astype(np.float32)
    hf = lambda im: np.abs(cv2.Laplacian(im, cv2.CV_32F)).mean()
    assert hf(noisy) > 3 * hf(clean)


def test_jpeg_quality_lever(camera_grey):
    img = camera_grey[:256, :256]
    errs, sizes = [], []
    for q in (95, 60, 20):
        out = degrade.jpeg(img, q)
        errs.append(np.abs(out.astype(int) - img).mean())
        sizes.append(len(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1]))
        assert out.shape == img.shape and out.dtype == np.uint8
    assert errs[0] < errs[1] < errs[2]
    assert sizes[0] > sizes[1] > sizes[2]


def test_exposure_and_contrast_change_the_image(camera_grey):
    crop = camera_grey[:128, :128]
    dark = degrade.degrade_focus(crop, degrade.FocusLabel(exposure=0.4), np.random.default_rng(0))
    flat = degrade.degrade_focus(crop, degrade.FocusLabel(contrast=0.6), np.random.default_rng(0))
    same = degrade.degrade_focus(crop, degrade.FocusLabel(), np.random.default_rng(0))
    assert np.abs(same.astype(int) - crop).max() <= 1  # identity settings change nothing
    assert dark.mean() < crop.mean() - 20
    assert flat.std() < 0.75 * crop.std()


def test_sample_focus_label_respects_class_bounds():
    rng = np.random.default_rng(0)
    for _ in range(200):
        lab = degrade.sample_focus_label(rng)
        if lab.cls == "sharp":
            assert lab.blur_px < degrade.SHARP_MAX_PX
        else:
            assert degrade.MIN_BLUR_PX <= lab.blur_px <= 8.0


def test_bayer_defect_mask_matches_visible_blob(camera_grey):
    img = np.repeat(camera_grey[200:264, 200:264, None], 3, axis=2)
    rng = np.random.default_rng(5)
    for trial in range(10):
        out, mask, lab = degrade.inject_defects(img, 1, rng, mode="bayer", demosaic_method=0)
        assert len(lab.centres) == 1
        clean = degrade.demosaic(degrade.mosaic(img), 0)
        diff = np.abs(out.astype(int) - clean).max(-1)
        vy, vx = np.unravel_index(np.argmax(diff), diff.shape)
        my, mx = np.argwhere(mask.max(-1))[0]
        cy, cx = lab.centres[0]
        # the strongest visible change is at (or next to) the labelled photosite
        assert max(abs(vy - cy), abs(vx - cx)) <= 1.5
        assert diff[vy, vx] >= 20
        # and it is a small blob: nothing changes more than 3 px from the defect
        far = np.ones_like(diff, bool)
        far[max(0, my - 3):my + 4, max(0, mx - 3):mx + 4] = False
        assert diff[far].max() == 0


def test_rgb_defects_are_exact_pixels(camera_grey):
    img = np.repeat(camera_grey[:64, :64, None], 3, axis=2)
    out, mask, lab = degrade.inject_defects(img, 3, np.random.default_rng(2), mode="rgb")
    changed = np.any(out != img, axis=-1)
    assert np.array_equal(changed, mask.max(-1) > 0)
    assert mask.sum() == len(lab.centres) == 3


def test_invisible_defects_are_not_placed():
    black = np.zeros((64, 64, 3), np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        out, mask, lab = degrade.inject_defects(black, 2, rng, mode="bayer")
        assert all(k != "dead" for k in lab.kinds)  # a dead photosite on black cannot be seen
        assert mask[..., 0].sum() == 0


def test_defect_jpeg_changes_pixels_but_keeps_the_blob(camera_grey):
    img = np.repeat(camera_grey[200:264, 200:264, None], 3, axis=2)
    out, mask, lab = degrade.inject_defects(img, 1, np.random.default_rng(9), mode="bayer",
                                            jpeg_quality=90, demosaic_method=0)
    clean = degrade.jpeg(degrade.demosaic(degrade.mosaic(img), 0), 90)
    diff = np.abs(out.astype(int) - clean).max(-1)
    cy, cx = lab.centres[0]
    vy, vx = np.unravel_index(np.argmax(diff), diff.shape)
    assert max(abs(vy - cy), abs(vx - cx)) <= 2.0


def test_a_shaken_real_tile_keeps_its_size_and_loses_detail_along_the_shake(camera_grey):
    from train.detail import tile_detail

    tile = np.ascontiguousarray(camera_grey[100:164, 200:264])
    rng = np.random.default_rng(5)
    for _ in range(6):
        out, lab = degrade.shake_real_tile(tile, rng)
        assert out.shape == tile.shape and out.dtype == np.uint8
        assert lab.cls == "motion" and lab.kind in ("shake", "line") and lab.blur_px >= degrade.MIN_BLUR_PX
        assert tile_detail(out[None])[0] < tile_detail(tile[None])[0]
