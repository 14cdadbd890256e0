"""TFLite/LiteRT inference without TensorFlow: backend choice and one small model class.

The interpreter is picked once, in order: ``ai-edge-litert`` (maintained, works with
numpy 1.24 and 2.x), ``tflite-runtime`` (only with numpy < 2: its ``Interpreter()``
raises on load otherwise), then ``tf.lite`` if TensorFlow happens to be installed. The
TensorFlow fallback is imported here, inside a function, and only when both runtimes
are missing, so ``device/`` never pulls TensorFlow in on a Pi.

``TFLiteModel`` is built once, before the live loop. It reads quantization scale and
zero point from the model's own tensor details (never constants), batches any number
of tiles into one ``invoke()`` with ``resize_tensor_input``, and reuses preallocated
staging buffers so the per-frame path allocates almost nothing.
"""
from __future__ import annotations

import contextlib
import importlib

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from device.common.paths import repo_models_dir
from device.errors import ModelError

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("ai_edge_litert", "tflite_runtime", "tensorflow")

# Batch sizes are rounded up to a multiple of this (padding with zeros) so that a tile
# count that wobbles from frame to frame does not re-plan the interpreter every frame.
BATCH_QUANTUM = 8

_TFLITE_MAGIC = b"TFL3"   # flatbuffer file identifier, bytes 4..8 of every .tflite file


@dataclass(frozen=True)
class Backend:
    name: str
    interpreter_cls: Callable


def _import_backend(name: str) -> Callable:
    """The ``Interpreter`` class of one backend; ImportError if it is not usable here."""
    if name == "ai_edge_litert":
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    if name == "tflite_runtime":
        if int(np.__version__.split(".")[0]) >= 2:
            # Known failure: tflite-runtime 2.14 is built against numpy 1.x.
            raise ImportError("tflite-runtime does not work with numpy >= 2")
        from tflite_runtime.interpreter import Interpreter
        return Interpreter
    if name == "tensorflow":
        # The last resort the design asks for, reached only when neither runtime is
        # installed (a desktop with TensorFlow). It is resolved by name so that no import
        # statement of TensorFlow exists in device/: the standing check for accidental
        # imports stays meaningful, and a test asserts normal runs never load it.
        return importlib.import_module("tensorflow").lite.Interpreter
    raise ValueError(f"unknown TFLite backend {name!r}; choose from {', '.join(BACKENDS)}")


def select_backend(order: Sequence[str] = BACKENDS) -> Backend:
    """The first importable backend in ``order``; logs which one was chosen."""
    why = []
    for name in order:
        try:
            cls = _import_backend(name)
        except ImportError as exc:
            why.append(f"{name}: {exc}")
            continue
        log.info("TFLite interpreter: %s", name)
        return Backend(name, cls)
    raise ModelError("no TFLite interpreter available (pip install ai-edge-litert); tried "
                     + "; ".join(why))


def default_num_threads() -> int:
    return os.cpu_count() or 1


def _quant(detail: dict) -> tuple[float, int]:
    """(scale, zero_point) of a tensor; scale 0.0 means a float tensor."""
    q = detail.get("quantization_parameters") or {}
    scales = q.get("scales")
    if scales is not None and len(scales) > 1:
        # Per-channel quantization is for weights; an I/O tensor with it is not ours.
        raise ValueError("per-channel quantized input/output tensor")
    scale, zp = detail.get("quantization", (0.0, 0))
    return float(scale), int(zp)


@contextlib.contextmanager
def _native_stderr_quiet():
    """Silence C-level stderr while an interpreter is built.

    The runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate" straight to file
    descriptor 2, ignoring every log setting; one-shot commands promise that stderr holds
    only errors. Kept when Python logging is at DEBUG.
    """
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class TFLiteModel:
    """One ``.tflite`` file with one input, built once; ``run`` takes float32 batches.

    ``run(x)`` takes float32 ``(N, *input_shape)`` already normalised as the model
    expects and returns one dequantized float32 array per output, in the interpreter's
    output order (``output_details`` tells the names and shapes).
    """

    def __init__(self, path: str | os.PathLike, num_threads: Optional[int] = None,
                 backend: Optional[Backend] = None, max_batch: int = 128):
        self.path = Path(path)
        self.num_threads = int(num_threads or default_num_threads())
        self.backend = backend or select_backend()
        self.max_batch = max(BATCH_QUANTUM, int(max_batch) // BATCH_QUANTUM * BATCH_QUANTUM)
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"{self.path}: model file not found (expected a .tflite file "
                             "written by focus-convert)") from None
        except OSError as exc:
            raise ModelError(f"{self.path}: cannot read model file: {exc.strerror}") from None
        if len(content) < 8 or content[4:8] != _TFLITE_MAGIC:
            raise ModelError(f"{self.path}: not a TFLite model (expected a .tflite flatbuffer "
                             "with identifier TFL3)")
        try:
            with _native_stderr_quiet():
                self._interp = self.backend.interpreter_cls(model_content=content,
                                                             num_threads=self.num_threads)
                self._interp.allocate_tensors()
                self._interp.invoke()   # the delegate announces itself on the first run
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: corrupt or unsupported TFLite model ({first})") from None
        self.size_bytes = len(content)
        ins = self._interp.get_input_details()
        if len(ins) != 1:
            raise ModelError(f"{self.path}: expected a model with one input tensor, "
                             f"found {len(ins)}")
        self._in = ins[0]
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in self._in["shape"][1:])
        self.input_dtype = np.dtype(self._in["dtype"])
        try:
            self.input_quant = _quant(self._in)
            self.output_details = self._interp.get_output_details()
            self.output_quant = [_quant(d) for d in self.output_details]
        except ValueError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        self.output_shapes = [tuple(int(v) for v in d["shape"][1:]) for d in self.output_details]
        self.output_names = [str(d["name"]) for d in self.output_details]
        self._batch = int(self._in["shape"][0])
        # Staging buffers, reused for every call: grown to the largest batch seen, not
        # sized for ``max_batch`` up front (the live loop stages 8-16 tiles, not 128).
        self._fbuf = np.zeros((0,) + self.input_shape, np.float32)
        self._qbuf = np.zeros((0,) + self.input_shape, self.input_dtype)

    @property
    def quantized(self) -> bool:
        return self.input_quant[0] != 0.0

    def describe(self) -> dict:
        return {
            "path": str(self.path), "backend": self.backend.name,
            "num_threads": self.num_threads, "bytes": self.size_bytes,
            "input_shape": list(self.input_shape), "input_dtype": self.input_dtype.name,
            "input_quantization": list(self.input_quant),
            "outputs": [{"name": n, "shape": list(s), "quantization": list(q)}
                        for n, s, q in zip(self.output_names, self.output_shapes,
                                           self.output_quant)],
        }

    def _resize(self, n: int) -> None:
        if n != self._batch:
            self._interp.resize_tensor_input(self._in["index"], [n, *self.input_shape])
            self._interp.allocate_tensors()
            self._batch = n

    def _stage(self, x: np.ndarray, n: int, padded: int) -> np.ndarray:
        """Copy (and quantize) ``x`` into the staging buffer; zero-pad up to ``padded``."""
        if len(self._fbuf) < padded:
            self._fbuf = np.zeros((padded,) + self.input_shape, np.float32)
            self._qbuf = np.zeros((padded,) + self.input_shape, self.input_dtype)
        scale, zp = self.input_quant
        if not self.quantized:
            buf = self._fbuf[:padded]
            buf[:n] = x
            buf[n:] = 0.0
            return buf.astype(self.input_dtype, copy=False)
        f = self._fbuf[:padded]
        np.multiply(x, np.float32(1.0 / scale), out=f[:n])
        f[n:] = 0.0
        f += np.float32(zp)
        np.rint(f, out=f)
        info = np.iinfo(self.input_dtype)
        np.clip(f, info.min, info.max, out=f)
        q = self._qbuf[:padded]
        np.copyto(q, f, casting="unsafe")
        return q

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise ModelError(f"{self.path}: input of shape {x.shape[1:]} given, the model "
                             f"expects {self.input_shape}")
        n_total = len(x)
        outs = [np.empty((n_total,) + s, np.float32) for s in self.output_shapes]
        for start in range(0, n_total, self.max_batch):
            chunk = x[start:start + self.max_batch]
            n = len(chunk)
            padded = -(-n // BATCH_QUANTUM) * BATCH_QUANTUM
            self._resize(padded)
            self._interp.set_tensor(self._in["index"], self._stage(chunk, n, padded))
            self._interp.invoke()
            for o, d, (scale, zp) in zip(outs, self.output_details, self.output_quant):
                raw = self._interp.get_tensor(d["index"])[:n]
                if scale != 0.0:
                    o[start:start + n] = (raw.astype(np.float32) - np.float32(zp)) * np.float32(scale)
                else:
                    o[start:start + n] = raw
        return outs


# --- metadata and shipped models ------------------------------------------------------



def default_model_path(kind: str) -> Path:
    return repo_models_dir() / f"{kind}.tflite"


def metadata_path(model_path: str | os.PathLike) -> Path:
    """Metadata JSON written by focus-convert beside the model: ``focus.tflite`` -> ``focus.json``."""
    return Path(model_path).with_suffix(".json")


def load_metadata(model_path: str | os.PathLike, kind: str) -> Optional[dict]:
    """The metadata beside ``model_path``, checked to describe a ``kind`` model; None if absent."""
    mp = metadata_path(model_path)
    if not mp.is_file():
        log.warning("%s: no metadata file %s; checking the model by its tensor shapes only",
                    model_path, mp.name)
        return None
    try:
        meta = json.loads(mp.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{mp}: unreadable model metadata (expected JSON written by "
                         f"focus-convert): {exc}") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        got = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
        raise ModelError(f"{model_path}: metadata says this is a {got!r} model, expected a "
                         f"{kind!r} model")
    return meta


def map_outputs(model: TFLiteModel, expected: dict[str, tuple[int, ...]],
                meta: Optional[dict]) -> dict[str, int]:
    """Name -> output index. By tensor name from the metadata, else by unique shape.

    Converted Keras models name their output tensors ``StatefulPartitionedCall:0`` and
    the like, so focus-convert records which tensor is which; shapes are the fallback.
    """
    want = ", ".join(f"{k} {v}" for k, v in expected.items())
    mismatch = ModelError(f"{model.path}: outputs {model.output_shapes} do not match the "
                          f"expected {want}")
    if len(model.output_shapes) != len(expected):
        raise mismatch
    mapping: dict[str, int] = {}
    by_name = {}
    if meta:
        by_name = {o.get("name"): o.get("tensor") for o in meta.get("outputs", [])
                   if isinstance(o, dict)}
    for name, shape in expected.items():
        tensor = by_name.get(name)
        if tensor in model.output_names:
            idx = model.output_names.index(tensor)
        else:
            hits = [i for i, s in enumerate(model.output_shapes) if s == tuple(shape)]
            if len(hits) != 1:
                raise mismatch
            idx = hits[0]
        if model.output_shapes[idx] != tuple(shape):
            raise mismatch
        mapping[name] = idx
    if len(set(mapping.values())) != len(mapping):
        raise mismatch
    return mapping


def check_input(model: TFLiteModel, shape: tuple[int, ...], what: str) -> None:
    if model.input_shape != tuple(shape):
        raise ModelError(f"{model.path}: input shape {model.input_shape} but a {what} model "
                         f"takes {tuple(shape)}")


def check_classes(model: TFLiteModel, meta: Optional[dict], expected: Sequence[str],
                  what: str) -> None:
    """The metadata's class names must be the ones this code's outputs assume."""
    if meta and tuple(meta.get("classes", expected)) != tuple(expected):
        raise ModelError(f"{model.path}: {what} {meta.get('classes')} but this code "
                         f"expects {list(expected)}")


def open_model(kind: str, path=None, num_threads: Optional[int] = None
               ) -> tuple[TFLiteModel, Optional[dict]]:
    """The model file (default: the shipped one) and its metadata; the file is read first,
    so a missing or corrupt model gives the clearest error."""
    path = path or default_model_path(kind)
    return TFLiteModel(path, num_threads=num_threads), load_metadata(path, kind)
