"""The dark-frame check on a sensor whose defects follow real statistics: isolated hot
pixels with a tail of clusters, a few column and row defects, and hot pixels that grow
with exposure time and temperature (tests/device/bayer_defects.py)."""
import numpy as np

from device.defects.sensor_check import sensor_check
from tests.device.bayer_defects import dark_frames, sensor_population

SHAPE = (240, 320)


def test_the_population_is_mostly_isolated_with_a_tail_of_clusters_and_a_few_lines():
    sites, lines = sensor_population(np.random.default_rng(0), (2000, 3000), 2000)
    sizes = np.array([len(px) for px, _, _ in sites])
    assert 0.84 <= np.mean(sizes == 1) <= 0.92
    assert set(sizes.tolist()) == {1, 2, 3}
    assert 0.015 <= len(lines) / (len(lines) + len(sites)) <= 0.05
    assert sum(k == "column" for k, _, _ in lines) > sum(k == "row" for k, _, _ in lines)


def test_column_and_row_defects_are_reported_as_lines_not_as_pixels():
    rng = np.random.default_rng(1)
    sites, _ = sensor_population(rng, SHAPE, 30)
    lines = [("column", 50, 5.0), ("column", 201, -4.0), ("row", 120, 6.0)]
    darks = dark_frames(rng, SHAPE, (sites, lines), 8, exposure_s=1.0)
    check = sensor_check(darks)
    got = sorted((ln["kind"], ln["index"]) for ln in check["lines"])
    assert got == sorted((k, i) for k, i, _ in lines)
    assert check["meta"]["counts"]["column"] == 2 and check["meta"]["counts"]["row"] == 1
    on_lines = [d for d in check["defects"] if d["x"] in (50, 201) or d["y"] == 120]
    hot_on_lines = {(y, x) for px, kind, _ in sites if kind != "dead" for y, x in px
                    if x in (50, 201) or y == 120}
    assert {(d["y"], d["x"]) for d in on_lines} <= hot_on_lines      # the line itself is no pixel


def test_hot_pixels_grow_with_exposure_time_and_temperature():
    population = sensor_population(np.random.default_rng(2), SHAPE, 60)
    counts = []
    for exposure_s, temp in ((0.05, 25.0), (0.05, 40.0), (0.5, 40.0)):   # warmer, then longer
        darks = dark_frames(np.random.default_rng(3), SHAPE, population, 8, exposure_s, temp)
        counts.append(sensor_check(darks)["meta"]["counts"]["hot"])
    assert counts[0] < counts[1] < counts[2], counts
    hot_sites = sum(len(px) for px, kind, _ in population[0] if kind in ("hot", "stuck"))
    assert counts[2] <= hot_sites       # nothing beyond the sensor's own defects
