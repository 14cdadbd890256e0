"""Star mode through the composition root: ``--measure hfr`` with a viewer builds the
star monitor before the viewfinder, and the HUD and /api/status carry its stars."""
from __future__ import annotations

import pytest

from device.app.wiring import build_app
from device.config import load_config
from device.loop.frame_loop import Loop
from device.scoring.stars_live import StarMonitor
from device.sources.sim import SimCamera


@pytest.fixture
def desk(monkeypatch, tmp_path):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))


@pytest.mark.parametrize("measure", ["hfr", "focus"])
def test_star_mode_reaches_the_hud_and_the_status(desk, measure):
    cfg = load_config(overrides={
        "sim": {"scene": "stars", "width": 320, "height": 240, "fps": 0,
                "best_position": 500, "start_position": 500},
        "autofocus": {"measure": measure},
        "web": {"listen": "127.0.0.1:0"},
    })
    app = build_app(cfg, SimCamera(cfg.sim), headless=True, environ={})
    try:
        Loop(app.source, app.scorer, app.sinks, max_frames=3).run()
        vf = app.viewfinder
        frame, result, _ = vf.latest()
        hud = vf.hud_info(result)
        if measure == "focus":
            assert vf.stars is None and hud.stars is None and vf.stars_status() is None
            return
        monitor = vf.stars
        assert isinstance(monitor, StarMonitor)
        assert app.sinks.index(monitor) < app.sinks.index(vf)   # measured before it is shown
        assert hud.stars.count > 5 and hud.stars.status == "ok"
        assert app.web.status()["stars"]["count"] == hud.stars.count
        assert [p[0] for p in monitor.status().vcurve] == [500.0] * 3
    finally:
        app.close()
