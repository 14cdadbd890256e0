import pytest

from device.config import Config, ScoringConfig, load_config, parse_roi
from device.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_defaults_are_valid_and_frozen():
    cfg = load_config()
    assert isinstance(cfg, Config) and cfg.source.spec == "auto"
    with pytest.raises(Exception):
        cfg.source.spec = "sim"


def test_file_values_reach_the_dataclasses(tmp_path):
    cfg = load_config(write(tmp_path, """
[source]
spec = "sim"
[scoring]
roi = [10, 20, 30, 40]
tile_grid = [3, 4]
[sim]
depth_of_field = 12
"""))
    assert cfg.source.spec == "sim"
    assert cfg.scoring.roi == (10, 20, 30, 40) and cfg.scoring.tile_grid == (3, 4)
    assert cfg.sim.depth_of_field == 12.0


def test_cli_overrides_win_over_the_file(tmp_path):
    cfg = load_config(write(tmp_path, '[source]\nspec = "sim"\n'), {"source": {"spec": "images:x"}})
    assert cfg.source.spec == "images:x"


@pytest.mark.parametrize("text, key", [
    ("[scoring]\nroii = [1,2,3,4]\n", "scoring.roii"),
    ("[nonsense]\nx = 1\n", "nonsense"),
    ("[sim]\nwidth = 'wide'\n", "sim.width"),
    ("[sim]\ndepth_of_field = -1\n", "sim.depth_of_field"),
    ("[scoring]\ntile_grid = [0, 4]\n", "scoring.tile_grid"),
    ("[scoring]\nroi = [1, 2, 3]\n", "scoring.roi"),
    ("[log]\nlevel = 'loud'\n", "log.level"),
    ("[sim]\nseed = true\n", "sim.seed"),
])
def test_bad_keys_and_values_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(write(tmp_path, text))


def test_bad_toml_and_missing_file_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[source\nspec="))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_roi_parsing():
    assert parse_roi("1, 2,3,4") == (1, 2, 3, 4)
    for bad in ("1,2,3", "a,b,c,d", "1,2,0,4", "-1,0,5,5"):
        with pytest.raises(ConfigError):
            parse_roi(bad)
    assert ScoringConfig(roi=[1, 2, 3, 4]).roi == (1, 2, 3, 4)
