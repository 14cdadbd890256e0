import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from device.cli import main
from tests.conftest import REPO, pcb_sweep_paths
from tests.sweep_truth import PCB_SWEEP_TRUTH


def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "device", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def blur_series(tmp_path, photo_bgr):
    paths = []
    for i, sigma in enumerate([0.01, 1.5, 4.0]):
        p = tmp_path / f"img{i}.png"
        img = photo_bgr if sigma < 0.1 else cv2.GaussianBlur(photo_bgr, (0, 0), sigma)
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    return paths


def test_score_prints_one_json_object_per_image_in_order(blur_series, capsys):
    assert main(["score", "--json", *blur_series]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == blur_series
    for r in rows:
        assert {"path", "width", "height", "measures"} <= set(r)
        assert (r["width"], r["height"]) == (512, 512)
        assert set(r["measures"]) == {"tenengrad", "laplacian_var", "modified_laplacian", "brenner"}
    focus = [r["focus"] for r in rows]
    assert focus == sorted(focus, reverse=True)


@pytest.mark.parametrize("kind", ["grey", "bgra", "u16"])
def test_score_accepts_grey_bgra_and_16_bit(tmp_path, photo_bgr, capsys, kind):
    img = {"grey": cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2GRAY),
           "bgra": cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2BGRA),
           "u16": photo_bgr.astype(np.uint16) * 257}[kind]
    p = tmp_path / f"x_{kind}.png"
    cv2.imwrite(str(p), img)
    assert main(["score", "--json", str(p)]) == 0
    row = json.loads(capsys.readouterr().out)
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), photo_bgr)
    main(["score", "--json", str(ref)])
    ref_row = json.loads(capsys.readouterr().out)
    assert row["focus"] == pytest.approx(ref_row["focus"], rel=0.05)


def test_score_batch_keeps_going_after_bad_files(blur_series, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff garbage")
    r = run_cli("score", "--json", blur_series[0], str(tmp_path / "missing.png"), str(corrupt),
                blur_series[1])
    assert r.returncode == 2
    assert [json.loads(l)["path"] for l in r.stdout.splitlines()] == [blur_series[0], blur_series[1]]
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 2 and "missing.png" in errors[0] and "corrupt.jpg" in errors[1]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, needle", [
    (["score", "--roi", "0,0,0,10", "IMG"], "ROI"),
    (["score", "--roi", "400,400,500,500", "IMG"], "outside"),
    (["run", "--source", "nonsense"], "bad source spec"),
    (["run", "--source", "video:/no/such.mp4"], "no such file"),
    (["run", "--source", "images:/no/such/*.png"], "no files match"),
    (["run", "--config", "/no/such.toml"], "not found"),
    (["run", "--roi", "1,2,3"], "ROI"),
    (["run", "--frames", "0"], "must be > 0"),
    (["sweep", "/no/a.png", "/no/b.png"], "no such file"),
])
def test_bad_input_is_one_line_and_exit_2(args, needle, blur_series):
    args = [blur_series[0] if a == "IMG" else a for a in args]
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert len([l for l in r.stderr.splitlines() if "error" in l]) >= 1


def test_bad_config_key_is_named(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[scoring]\nroi_typo = [1, 2, 3, 4]\n")
    r = run_cli("run", "--source", "sim", "--frames", "2", "--config", str(cfg))
    assert r.returncode == 2 and "scoring.roi_typo" in r.stderr and "Traceback" not in r.stderr


def test_run_stats_is_the_last_stdout_line_with_sim_truth(tmp_path):
    log = tmp_path / "frames.jsonl"
    r = run_cli("run", "--source", "sim", "--frames", "12", "--headless", "--seed", "4",
                "--roi", "100,100,200,150", "--log-jsonl", str(log), "--stats")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    assert stats["frames"] == 12
    assert stats["fps"] > 0 and 0 < stats["ms_per_frame_p50"] <= stats["ms_per_frame_p95"]
    assert set(stats["sim"]) == {"lens_position", "best_position", "depth_of_field"}
    rows = [json.loads(l) for l in log.read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(12))
    assert rows[0]["roi"] == [100, 100, 200, 150] and rows[0]["focus"] > 0


def test_run_on_images_processes_every_frame_in_order(blur_series, tmp_path, capsys):
    log = tmp_path / "f.jsonl"
    folder = blur_series[0].rsplit("/", 1)[0]
    assert main(["run", "--source", f"images:{folder}/img*.png", "--log-jsonl", str(log), "--stats"]) == 0
    rows = [json.loads(l) for l in log.read_text().splitlines()]
    assert len(rows) == 3
    assert [r["focus"] for r in rows] == sorted((r["focus"] for r in rows), reverse=True)
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["frames"] == 3


@pytest.mark.parametrize("truth", PCB_SWEEP_TRUTH, ids=lambda t: t.name)
def test_sweep_on_the_real_pcb_focus_sweep(truth, capsys):
    paths = [str(p) for p in pcb_sweep_paths()]
    assert main(["sweep", "--json", "--roi", truth.roi_text, *paths]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["best_index"] == truth.best
    assert out["best_path"] == paths[truth.best]
    assert len(out["curve"]) == 10 and all(isinstance(v, float) for v in out["curve"])
    assert abs(out["refined_index"] - truth.best) <= 0.5


def test_run_model_flag_names_a_bad_model_file(tmp_path):
    bad = tmp_path / "focus.tflite"
    bad.write_bytes(b"not a model at all")
    r = run_cli("run", "--source", "sim", "--frames", "2", "--model", str(bad))
    assert r.returncode == 2
    assert str(bad) in r.stderr and "Traceback" not in r.stderr
