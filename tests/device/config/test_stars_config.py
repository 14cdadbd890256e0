"""The [stars] and [sim.sky] sections and autofocus.measure: checked values, clear errors."""
from __future__ import annotations

import pytest

from device.config import ConfigError, load_config
from device.errors import InputError
from device.sources.sim import open_sim


def test_defaults_and_overrides():
    cfg = load_config(overrides={"autofocus": {"measure": "fwhm"}, "stars": {"k_sigma": 4.0},
                                 "sim": {"sky": {"seeing_fwhm": 3.2, "obstruction": 0.0}}})
    assert cfg.autofocus.measure == "fwhm" and cfg.stars.k_sigma == 4.0
    assert cfg.sim.sky.seeing_fwhm == 3.2 and cfg.sim.sky.obstruction == 0.0
    assert load_config().autofocus.measure == "focus"


@pytest.mark.parametrize("over,key", [
    ({"autofocus": {"measure": "hdr"}}, "autofocus.measure"),
    ({"stars": {"min_r2": 1.5}}, "stars.min_r2"),
    ({"stars": {"kappa": 3}}, "kappa"),
    ({"sim": {"sky": {"obstruction": 1.0}}}, "sim.sky.obstruction"),
])
def test_bad_values_name_the_key(over, key):
    with pytest.raises(ConfigError, match=key):
        load_config(overrides=over)


def test_sim_options_reach_the_sky():
    cam = open_sim({"scene": "stars", "seeing_fwhm": "3.0", "stars": "5"},
                   load_config().sim)
    assert cam.cfg.sky.seeing_fwhm == 3.0 and cam.cfg.sky.stars == 5
    with pytest.raises(InputError, match="unknown option 'seeing'"):
        open_sim({"scene": "stars", "seeing": "3"}, load_config().sim)
