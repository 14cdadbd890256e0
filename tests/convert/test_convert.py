"""focus-convert: presets, the parity gate, metadata, and int8 vs float parity on fixed tiles."""
from __future__ import annotations

import json

import numpy as np
import pytest

# focus-convert is desktop tooling: the Pi-like environment has neither TensorFlow nor
# scikit-learn, and the device never needs them.
pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

from convert import pipeline  # noqa: E402
from convert.cli import main  # noqa: E402
from convert.metrics import auc  # noqa: E402
from device.scoring.inference import TFLiteModel, map_outputs  # noqa: E402
from device.common.preprocess import FOCUS_CLASSES  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def converted(tiny_model_dirs, fake_data, tmp_path_factory):
    """int8 and float32 conversions of both tiny models (each one parity-checked)."""
    out = tmp_path_factory.mktemp("converted")
    res = {}
    for kind in ("focus", "defects"):
        for preset in ("int8", "float32"):
            path = out / f"{kind}_{preset}.tflite"
            meta = pipeline.convert_model_dir(tiny_model_dirs[kind], preset, path, data=fake_data,
                                              rep_n=100)
            res[kind, preset] = (path, meta)
    return res


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    s = np.round(rng.random(300), 1)               # many ties, as with int8 outputs
    y = rng.random(300) < s
    pos, neg = s[y], s[~y]
    ref = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
        len(pos) * len(neg))
    assert auc(s, y) == pytest.approx(ref)
    assert np.isnan(auc(s, np.zeros(300, bool)))


def test_int8_is_full_integer_with_metadata(converted):
    path, meta = converted["focus", "int8"]
    m = TFLiteModel(path, num_threads=1)
    assert meta["kind"] == "focus" and meta["classes"] == list(FOCUS_CLASSES)
    assert meta["bytes"] == path.stat().st_size
    assert meta["input"]["shape"] == [64, 64, 1]
    assert meta["input"]["normalisation"]["function"] == "device.common.preprocess.normalize_focus_tiles"
    assert [o["name"] for o in meta["outputs"]] == ["probs", "blur_px"]
    assert {o["tensor"] for o in meta["outputs"]} == set(m.output_names)
    assert meta["training"] == {"metrics": {"accuracy": 0.5}}     # copied from the card
    par = meta["parity"]
    assert par["keras"]["accuracy"] > 0.6        # the tiny model learned something ...
    assert par["keras"]["accuracy"] - par["tflite"]["accuracy"] <= 0.01   # ... and kept it
    on_disk = json.loads(path.with_suffix(".json").read_text())
    assert on_disk["sha256"] == meta["sha256"]
    assert path.with_suffix(".card.json").is_file()
    if meta["preset"] == "int8":
        assert m.input_dtype == np.int8 and m.quantized
    else:                                    # the fallback kept some tensors in float
        assert meta["preset"] == "int8-mixed" and meta["parity"]["float_tensors"]


@pytest.mark.parametrize("kind", ["focus", "defects"])
def test_int8_and_float_agree_on_fixed_tiles(converted, fake_data, kind):
    x, _ = fake_data.evaluation_split(kind, 123, 64)
    outs = {}
    for preset in ("int8", "float32"):
        path, meta = converted[kind, preset]
        m = TFLiteModel(path, num_threads=1)
        names = {o["name"]: tuple(o["shape"]) for o in meta["outputs"]}
        idx = map_outputs(m, names, meta)
        res = m.run(x)
        outs[preset] = {n: res[i] for n, i in idx.items()}
    if kind == "focus":
        p8, p32 = outs["int8"]["probs"], outs["float32"]["probs"]
        assert np.abs(p8 - p32).max() < 0.12
        assert np.mean(p8.argmax(1) == p32.argmax(1)) >= 0.95
    else:
        h8, h32 = outs["int8"]["heatmap"], outs["float32"]["heatmap"]
        assert np.abs(h8 - h32).mean() < 0.01
        assert np.mean((h8 > 0.5) == (h32 > 0.5)) >= 0.995


@pytest.mark.parametrize("preset", ["int8", "float32"])
def test_defect_net_dilations_are_folded_and_batches_resize(converted, fake_data, preset):
    """The batch-1 signature lets the converter rebuild dilated depthwise convolutions:
    no SpaceToBatch/BatchToSpace shuffles (which XNNPACK does not take, splitting the
    graph), and the BatchNorm after them is folded. Batches are still resized at run
    time and give the same numbers as one tile at a time."""
    import tensorflow as tf

    from train.models import build_defect_net

    dilated = [l for l in build_defect_net(width=0.5).layers
               if max(l.get_config().get("dilation_rate", (1, 1))) > 1]
    assert dilated, "the defect net is expected to use dilated convolutions"
    path, _ = converted["defects", preset]
    interp = tf.lite.Interpreter(model_path=str(path))
    interp.allocate_tensors()
    ops = {o["op_name"] for o in interp._get_ops_details()}
    assert not ops & {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "MUL"}, ops
    m = TFLiteModel(path, num_threads=1)
    x, _ = fake_data.evaluation_split("defects", 7, 20)
    batched = m.run(x)[0]
    single = np.concatenate([m.run(x[i:i + 1])[0] for i in range(len(x))])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_parity_failure_exits_1_and_writes_nothing(tiny_model_dirs, fake_data, tmp_path,
                                                   monkeypatch, capsys):
    # A conversion that must beat the Keras model by 5 points cannot pass.
    monkeypatch.setattr(pipeline, "MAX_ACCURACY_DROP", -0.05)
    monkeypatch.setitem(__import__("sys").modules, "train.data", fake_data)
    import train
    monkeypatch.setattr(train, "data", fake_data, raising=False)
    out = tmp_path / "f.tflite"
    rc = main([str(tiny_model_dirs["focus"]), "--preset", "float32", "--out", str(out),
               "--representative", "50"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "fails the parity check" in err and "accuracy" in err and "nothing written" in err
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_cli_float16_writes_model_and_metadata(tiny_model_dirs, fake_data, tmp_path,
                                               monkeypatch, capsys):
    import train
    monkeypatch.setattr(train, "data", fake_data, raising=False)
    monkeypatch.setitem(__import__("sys").modules, "train.data", fake_data)
    out = tmp_path / "d16.tflite"
    rc = main([str(tiny_model_dirs["defects"]), "--preset", "float16", "--out", str(out),
               "--representative", "50"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "defects" and summary["preset"] == "float16"
    assert out.is_file() and json.loads(out.with_suffix(".json").read_text())["kind"] == "defects"


@pytest.mark.parametrize("setup, expect", [
    ("missing", "not a directory"),
    ("empty", "model.keras: not found"),
    ("corrupt", "cannot be loaded as a Keras model"),
])
def test_bad_model_dir_is_one_line_exit_2(tmp_path, capsys, setup, expect):
    d = tmp_path / "run"
    if setup != "missing":
        d.mkdir()
    if setup == "corrupt":
        (d / "model.keras").write_bytes(b"not a zip")
    rc = main([str(d), "--preset", "int8"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and expect in err and str(d) in err


def test_unknown_preset_is_rejected(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["x", "--preset", "int4"])
    assert ei.value.code == 2
