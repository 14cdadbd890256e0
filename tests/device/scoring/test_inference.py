"""device.scoring.inference: backend fallback order, bad model files, quantization and batching."""
from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pytest

from tests.conftest import REPO
from device.errors import ModelError
from device.scoring.inference import TFLiteModel, default_model_path, select_backend

FOCUS = default_model_path("focus")
DEFECTS = default_model_path("defects")


# --- backend selection -------------------------------------------------------------------

class _FakeInterpreter:
    pass


def _fake_module(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


@pytest.fixture
def no_backends(monkeypatch):
    """Every real backend made unimportable (``sys.modules[name] = None`` blocks import)."""
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime",
                 "tflite_runtime.interpreter", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)
    return monkeypatch


def _install_tflite_runtime(mp):
    mp.setitem(sys.modules, "tflite_runtime", _fake_module("tflite_runtime"))
    mp.setitem(sys.modules, "tflite_runtime.interpreter",
               _fake_module("tflite_runtime.interpreter", Interpreter=_FakeInterpreter))


def _install_tensorflow(mp):
    cls = type("TfInterpreter", (), {})
    mp.setitem(sys.modules, "tensorflow",
               _fake_module("tensorflow", lite=types.SimpleNamespace(Interpreter=cls)))
    return cls


def test_litert_is_first_choice():
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    b = select_backend()
    assert b.name == "ai_edge_litert" and b.interpreter_cls is Interpreter


def test_falls_back_to_tflite_runtime_with_numpy_1(no_backends):
    _install_tflite_runtime(no_backends)
    no_backends.setattr(np, "__version__", "1.24.4")
    b = select_backend()
    assert b.name == "tflite_runtime" and b.interpreter_cls is _FakeInterpreter


def test_tflite_runtime_is_skipped_under_numpy_2(no_backends):
    # tflite-runtime 2.14 raises inside Interpreter() with numpy 2: never pick it there.
    _install_tflite_runtime(no_backends)
    tf_cls = _install_tensorflow(no_backends)
    no_backends.setattr(np, "__version__", "2.1.0")
    b = select_backend()
    assert b.name == "tensorflow" and b.interpreter_cls is tf_cls


def test_falls_back_to_tf_lite_last(no_backends):
    tf_cls = _install_tensorflow(no_backends)
    b = select_backend()
    assert b.name == "tensorflow" and b.interpreter_cls is tf_cls


def test_no_backend_is_a_model_error(no_backends):
    with pytest.raises(ModelError, match="ai-edge-litert"):
        select_backend()


def test_choice_is_logged(no_backends, caplog):
    _install_tensorflow(no_backends)
    with caplog.at_level("INFO", logger="device.scoring.inference"):
        select_backend()
    assert "TFLite interpreter: tensorflow" in caplog.text


# --- bad model files ----------------------------------------------------------------------

def _expect_model_error(path, *fragments):
    with pytest.raises(ModelError) as ei:
        TFLiteModel(path, num_threads=1)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg
    for f in fragments:
        assert f in msg
    return msg


def test_missing_file(tmp_path):
    _expect_model_error(tmp_path / "nope.tflite", "not found", ".tflite")


def test_empty_and_garbage_files(tmp_path):
    e = tmp_path / "empty.tflite"
    e.write_bytes(b"")
    _expect_model_error(e, "not a TFLite model", "TFL3")
    g = tmp_path / "garbage.tflite"
    g.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    _expect_model_error(g, "not a TFLite model")


def test_truncated_model(tmp_path):
    blob = FOCUS.read_bytes()
    t = tmp_path / "truncated.tflite"
    t.write_bytes(blob[: len(blob) // 2])
    _expect_model_error(t, "corrupt")


def test_defect_model_given_as_focus_model(tmp_path):
    from device.scoring.focus_net import FocusScorer

    p = tmp_path / "swapped.tflite"
    p.write_bytes(DEFECTS.read_bytes())      # no metadata beside it: shapes must catch it
    with pytest.raises(ModelError, match=r"swapped\.tflite: input shape .* focus model takes"):
        FocusScorer.from_path(p, num_threads=1)


def test_metadata_of_the_wrong_kind(tmp_path):
    from device.scoring.focus_net import FocusScorer

    p = tmp_path / "focus.tflite"
    p.write_bytes(FOCUS.read_bytes())
    (tmp_path / "focus.json").write_text(json.dumps({"kind": "defects"}))
    with pytest.raises(ModelError, match="'defects' model, expected a 'focus' model"):
        FocusScorer.from_path(p, num_threads=1)
    (tmp_path / "focus.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"focus\.json: unreadable model metadata"):
        FocusScorer.from_path(p, num_threads=1)


# --- the shipped models through TFLiteModel --------------------------------------------------

@pytest.mark.parametrize("path", [FOCUS, DEFECTS], ids=["focus", "defects"])
def test_shipped_models_are_small_int8_with_params_from_the_file(path):
    m = TFLiteModel(path, num_threads=1)
    assert path.stat().st_size <= 100 * 1024
    meta = json.loads(path.with_suffix(".json").read_text())
    # The runtime's scale/zero point are the interpreter's own, not constants of ours.
    det = m._interp.get_input_details()[0]
    assert m.input_quant == (float(det["quantization"][0]), int(det["quantization"][1]))
    if meta["preset"] == "int8":
        assert m.input_dtype == np.int8 and m.quantized and m.input_quant[0] > 0


def test_batching_matches_one_tile_at_a_time():
    m = TFLiteModel(FOCUS, num_threads=1, max_batch=16)
    rng = np.random.default_rng(3)
    x = np.clip(rng.normal(0, 1, (21, *m.input_shape)), -4, 4).astype(np.float32)
    batched = m.run(x)                     # 16 + 5 (padded to 8): two invokes, two resizes
    for i in (0, 7, 15, 16, 20):
        single = m.run(x[i:i + 1])
        for b, s in zip(batched, single):
            np.testing.assert_allclose(b[i], s[0], atol=1e-5)
    assert [o.shape[0] for o in m.run(x[:0])] == [0] * len(m.output_shapes)


def test_staging_grows_to_the_batch_used_not_max_batch(photo_grey):
    from device.common.preprocess import FOCUS_TILE, normalize_focus_tiles

    m = TFLiteModel(FOCUS, num_threads=1, max_batch=128)
    t = FOCUS_TILE
    tiles = np.stack([photo_grey[y:y + t, x:x + t] for y in (0, 200, 440) for x in (0, 150, 300, 440)])
    x = normalize_focus_tiles(tiles)
    first = m.run(x[:3])
    assert len(m._fbuf) == 8               # one quantum, not 128 tiles' worth
    m.run(x)                               # 12 tiles: grows to 16
    assert len(m._fbuf) == 16
    again = m.run(x[:3])                   # smaller batches reuse the grown buffer
    assert len(m._fbuf) == 16
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_quantization_round_trip_is_within_one_step():
    m = TFLiteModel(FOCUS, num_threads=1)
    if not m.quantized:
        pytest.skip("shipped focus model has float input")
    scale, zp = m.input_quant
    x = np.linspace(-3, 3, 64 * 64, dtype=np.float32).reshape(1, 64, 64, 1)
    q = m._stage(x, 1, 8)[:1].astype(np.float32)
    np.testing.assert_allclose((q - zp) * scale, x, atol=scale / 2 + 1e-6)


def test_device_scoring_never_imports_tensorflow(tmp_path):
    """The Pi path end to end in a fresh interpreter: every device module imported, then the
    focus net and the defect net on a photo."""
    code = r"""
import importlib, pkgutil, sys, numpy as np
import device
for mod in pkgutil.walk_packages(device.__path__, "device."):
    if mod.name.endswith("__main__"):
        continue
    importlib.import_module(mod.name)
from device.scoring.focus_net import FocusScorer
from device.defects.net import DefectDetector
from device.common.scenes import load_photo
from device.common.preprocess import to_bgr, to_grey
img = to_bgr(load_photo("astronaut"))
r = FocusScorer.from_path(num_threads=1).analyse(to_grey(img))
d = DefectDetector.from_path(num_threads=1).detect(img)
assert r.label in ("sharp", "defocus", "motion"), r
bad = [m for m in sys.modules if m == "tensorflow" or m.startswith(("tensorflow.", "keras"))]
assert not bad, bad
print("ok")
"""
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("ok")
