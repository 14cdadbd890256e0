"""Property-based fuzz of the config converter (issue 19): whatever a TOML file or a flag
holds, ``build`` returns a valid ``Config`` (finite numbers, within the bounds) or raises
``ConfigError``; nothing else."""
import dataclasses
import math
import typing

import pytest
from hypothesis import given, settings, strategies as st

from device.config import Config
from device.config.convert import build
from device.config.limits import LIMITS
from device.errors import ConfigError

SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
HINTS = typing.get_type_hints(Config)
KEYS = sorted((name, f.name) for name, tp in HINTS.items() for f in dataclasses.fields(tp))

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-2 ** 70, max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 64, 8192, 8193, 2 ** 63, 0.5, 1e-300, 1e300,
                     math.nan, math.inf, -math.inf]),
    st.text(max_size=12), st.sampled_from(["a\x00b", "", "sim", "auto", "jpeg", "v", "up"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=5),
                   st.dictionaries(st.text(max_size=5), scalars, max_size=3))


@st.composite
def configs(draw):
    data: dict = {}
    for section, key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3)):
        data.setdefault(section, {})[key] = draw(values)
    if draw(st.booleans()):
        data[draw(st.sampled_from(sorted(SECTIONS)))] = draw(scalars)   # a section that is not a table
    return data


def _numbers(cfg):
    """(key, value) of every number in a built config, tuples unpacked as key[i]."""
    for sec in dataclasses.fields(cfg):
        section = getattr(cfg, sec.name)
        for f in dataclasses.fields(section):
            v = getattr(section, f.name)
            items = enumerate(v) if isinstance(v, tuple) else [(None, v)]
            for i, x in items:
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    yield (f"{sec.name}.{f.name}" + ("" if i is None else f"[{i}]")), x


@settings(max_examples=300, deadline=None)
@given(configs())
def test_the_converter_gives_a_valid_config_or_a_config_error(data):
    try:
        cfg = build(Config, data)
    except ConfigError:
        return
    assert isinstance(cfg, Config)
    for key, x in _numbers(cfg):
        assert math.isfinite(x), key
        lo, hi = LIMITS.get(key, (None, None))
        assert (lo is None or x >= lo) and (hi is None or x <= hi), (key, x)


def _specials(key):
    lo, hi = LIMITS[key]
    edges = [x for b in (lo, hi) if b is not None for x in (b - 1, b, b + 1, b * 10 + 10)]
    return st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, *edges])


@pytest.mark.parametrize("key", sorted(k for k in LIMITS if "[" not in k))
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_a_bounded_key_never_keeps_a_value_outside_its_bounds(key, data):
    value = data.draw(st.one_of(_specials(key), st.floats(allow_nan=True, allow_infinity=True)))
    section, name = key.split(".")
    tp = typing.get_type_hints(HINTS[section])[name]
    v = int(value) if tp is int and math.isfinite(value) else value
    try:
        cfg = build(Config, {section: {name: v}})
    except ConfigError:
        return
    got = getattr(getattr(cfg, section), name)
    lo, hi = LIMITS[key]
    assert math.isfinite(got) and (lo is None or got >= lo) and (hi is None or got <= hi)
