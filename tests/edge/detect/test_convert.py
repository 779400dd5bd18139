"""The TensorFlow.js → ONNX converter, op by op, against numpy references.

Each test writes a tiny graph model (model.json + weights.bin) the way TensorFlow.js
stores one, converts it, runs it with onnxruntime and compares with a reference computed
in NHWC by numpy, so layout mistakes (NHWC↔NCHW, HWIO↔OIHW, SAME padding) show.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from edge.detect.tfjs import ConversionError, convert, load_tfjs

Arr = np.ndarray[Any, Any]
RNG = np.random.default_rng(7)


def _s(text: str) -> dict[str, str]:
    return {"s": base64.b64encode(text.encode()).decode()}


def write_model(
    tmp: Path, shape: list[int], nodes: list[dict[str, Any]], consts: dict[str, Arr]
) -> Path:
    weights, blobs = [], []
    for name, value in consts.items():
        value = np.asarray(value)
        dtype = "int32" if value.dtype.kind == "i" else "float32"
        weights.append({"name": name, "shape": list(value.shape), "dtype": dtype})
        blobs.append(value.astype(np.int32 if dtype == "int32" else np.float32).tobytes())
        nodes = [{"name": name, "op": "Const"}, *nodes]
    dims = [{"size": str(d)} for d in shape]
    # The converter knows the graph input by its place (no inputs, not a constant).
    image = {"name": "x", "op": "Input", "attr": {"shape": {"shape": {"dim": dims}}}}
    spec = {
        "format": "graph-model",
        "modelTopology": {"node": [image, *nodes]},
        "weightsManifest": [{"paths": ["w.bin"], "weights": weights}],
    }
    (tmp / "w.bin").write_bytes(b"".join(blobs))
    (tmp / "model.json").write_text(json.dumps(spec))
    return tmp / "model.json"


def run(path: Path, output: str, x: Arr) -> Arr:
    model = convert(load_tfjs(path), [output])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x.astype(np.float32)})
    return np.asarray(y).transpose(0, 2, 3, 1)  # back to NHWC for comparison


def conv_nhwc(x: Arr, w: Arr, stride: int, depthwise: bool = False) -> Arr:
    """TF SAME convolution in numpy (extra padding at the end, like TensorFlow)."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    oh, ow = -(-h // stride), -(-wd // stride)
    ph = max((oh - 1) * stride + kh - h, 0)
    pw = max((ow - 1) * stride + kw - wd, 0)
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((n, oh, ow, c if depthwise else w.shape[3]), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            if depthwise:
                out[:, i, j, :] = np.einsum("nhwc,hwc->nc", patch, w[..., 0])
            else:
                out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, w)
    return out


def test_fused_conv_with_bias_and_relu6_stride_2(tmp_path: Path) -> None:
    x = RNG.normal(size=(1, 9, 7, 3))
    w = RNG.normal(size=(3, 3, 3, 4))
    b = RNG.normal(size=4)
    node = {
        "name": "y",
        "op": "_FusedConv2D",
        "input": ["x", "w", "b"],
        "attr": {
            "strides": {"list": {"i": ["1", "2", "2", "1"]}},
            "padding": _s("SAME"),
            "data_format": _s("NHWC"),
            "fused_ops": {"list": {"s": [_s("BiasAdd")["s"], _s("Relu6")["s"]]}},
        },
    }
    got = run(write_model(tmp_path, [1, 9, 7, 3], [node], {"w": w, "b": b}), "y", x)
    want = np.clip(conv_nhwc(x, w, 2) + b, 0, 6)
    assert got.shape == want.shape == (1, 5, 4, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_depthwise_conv_and_per_channel_mul(tmp_path: Path) -> None:
    x = RNG.normal(size=(1, 6, 6, 5))
    w = RNG.normal(size=(3, 3, 5, 1))
    scale = RNG.normal(size=5)
    nodes: list[dict[str, Any]] = [
        {
            "name": "d",
            "op": "DepthwiseConv2dNative",
            "input": ["x", "w"],
            "attr": {"strides": {"list": {"i": ["1", "1", "1", "1"]}}, "padding": _s("SAME")},
        },
        {"name": "y", "op": "Mul", "input": ["d", "scale"]},
    ]
    got = run(write_model(tmp_path, [1, 6, 6, 5], nodes, {"w": w, "scale": scale}), "y", x)
    np.testing.assert_allclose(
        got, conv_nhwc(x, w, 1, depthwise=True) * scale, rtol=1e-4, atol=1e-4
    )


def test_squeeze_excite_mean_concat_and_resize(tmp_path: Path) -> None:
    x = RNG.normal(size=(1, 4, 4, 2))
    nodes: list[dict[str, Any]] = [
        {"name": "m", "op": "Mean", "input": ["x", "axes"], "attr": {"keep_dims": {"b": True}}},
        {"name": "g", "op": "Sigmoid", "input": ["m"]},
        {"name": "se", "op": "Mul", "input": ["x", "g"]},
        {"name": "up", "op": "ResizeBilinear", "input": ["se", "size"], "attr": {}},
        {"name": "xup", "op": "ResizeBilinear", "input": ["x", "size"], "attr": {}},
        {"name": "y", "op": "ConcatV2", "input": ["up", "xup", "axis"]},
    ]
    consts = {"axes": np.array([1, 2]), "size": np.array([8, 8]), "axis": np.array(-1)}
    got = run(write_model(tmp_path, [1, 4, 4, 2], nodes, consts), "y", x)
    gate = 1 / (1 + np.exp(-x.mean(axis=(1, 2), keepdims=True)))

    def resize(a: Arr) -> Arr:  # TF1 ResizeBilinear: asymmetric, edge clamped
        src = np.arange(8) * 0.5
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, 3)
        f = src - i0
        rows = a[:, i0] * (1 - f)[None, :, None, None] + a[:, i1] * f[None, :, None, None]
        out: Arr = (
            rows[:, :, i0] * (1 - f)[None, None, :, None] + rows[:, :, i1] * f[None, None, :, None]
        )
        return out

    want = np.concatenate([resize(x * gate), resize(x)], axis=-1)
    assert got.shape == (1, 8, 8, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_an_unknown_op_is_refused_by_name(tmp_path: Path) -> None:
    nodes = [{"name": "y", "op": "Erf", "input": ["x"]}]
    with pytest.raises(ConversionError, match="y: op Erf is not supported"):
        convert(load_tfjs(write_model(tmp_path, [1, 2, 2, 1], nodes, {})), ["y"])


def test_a_short_weights_file_is_refused(tmp_path: Path) -> None:
    path = write_model(tmp_path, [1, 2, 2, 1], [], {"w": np.ones((4, 4))})
    (tmp_path / "w.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ConversionError, match="too short"):
        load_tfjs(path)


def test_quantized_weights_are_restored(tmp_path: Path) -> None:
    # The packaged model stores its weights as float16; TF.js also knows uint8 with
    # (scale, min). Both must come back as the float32 values they stand for.
    half = RNG.normal(size=(2, 3)).astype(np.float16)
    codes = np.array([0, 1, 255, 128], np.uint8)
    spec = {
        "format": "graph-model",
        "modelTopology": {"node": []},
        "weightsManifest": [
            {
                "paths": ["w.bin"],
                "weights": [
                    {
                        "name": "h",
                        "shape": [2, 3],
                        "dtype": "float32",
                        "quantization": {"dtype": "float16"},
                    },
                    {
                        "name": "q",
                        "shape": [4],
                        "dtype": "float32",
                        "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0},
                    },
                ],
            }
        ],
    }
    (tmp_path / "w.bin").write_bytes(half.tobytes() + codes.tobytes())
    (tmp_path / "model.json").write_text(json.dumps(spec))
    model = load_tfjs(tmp_path / "model.json")
    assert model.weights["h"].dtype == np.float32
    np.testing.assert_array_equal(model.weights["h"], half.astype(np.float32))
    np.testing.assert_allclose(model.weights["q"], [-1.0, -0.5, 126.5, 63.0])
