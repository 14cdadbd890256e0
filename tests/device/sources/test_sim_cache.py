"""The simulated lens's image cache stays within ``sim.cache_mb`` and changes no frame."""
import numpy as np
import pytest

from device.config import SimConfig, build
from device.errors import ConfigError
from device.sources.sim import SimCamera

ENTRY_BYTES = 2 * 160 * 120 * 3 * 4      # signal and sigma, float32, at 160x120


def _cam(cache_mb: float) -> SimCamera:
    return SimCamera(SimConfig(scene="dead_leaves", width=160, height=120, seed=5,
                               best_position=500, start_position=500, cache_mb=cache_mb))


def _frames(cam: SimCamera, positions) -> list:
    out = []
    for p in positions:
        cam.lens_position = p
        out.append(cam.read().color)
    return out


def test_cache_never_holds_more_than_its_bound_and_keeps_the_newest():
    limit_mb = 3.5 * ENTRY_BYTES / 2**20          # room for three entries, not four
    cam = _cam(limit_mb)
    positions = [300 + 40 * i for i in range(10)]  # ten distinct blur radii
    for p in positions:
        cam.lens_position = p
        cam.read()
        assert cam.cache_bytes <= cam.cache_limit
    assert cam.cache_bytes == 3 * ENTRY_BYTES
    kept = {k[0] for k in cam._cache}
    assert kept == {round(cam.blur_radius(p) * 4) / 4 for p in positions[-4:-1]}
    cam.close()
    assert cam.cache_bytes == 0


def test_zero_disables_the_cache_and_frames_are_the_same_either_way():
    positions = [500, 380, 500, 620, 380, 500]     # revisits: hits when cached
    cached, uncached = _cam(32.0), _cam(0.0)
    a, b = _frames(cached, positions), _frames(uncached, positions)
    assert uncached.cache_bytes == 0 and cached.cache_bytes > 0
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("bad", [-1.0, 5000.0])
def test_cache_mb_out_of_range_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="cache_mb"):
        build(SimConfig, {"cache_mb": bad}, "sim")


def test_default_fits_a_pi_zero_2w():
    # 512 MB for the OS, the service and its models: the cache may take a small share.
    assert SimConfig().cache_mb <= 48
