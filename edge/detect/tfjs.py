"""TensorFlow.js graph model → ONNX, for the handful of ops our packaged detector uses.

The only COCO detector that ships inside a registry package is a TensorFlow.js graph
model (model.json: a TF GraphDef as JSON; *.bin: the weights). There is no TensorFlow on
a Pi, so the setup step converts it once to ONNX, which onnxruntime runs on x86-64 and
aarch64 alike. The converter keeps activations in NCHW (ONNX's layout): the NHWC input is
transposed once, weights are rearranged, and NHWC axes of Mean/ConcatV2 are remapped.
It converts only the subgraph that the requested outputs need, and refuses any other op
by name, so a model it does not understand fails at setup, not on the camera.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
#: NHWC axis → NCHW axis, for 4-D tensors.
NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1, -2: 3, -3: 2, -4: 0}
_STORED = {"float32": np.float32, "int32": np.int32, "float16": np.float16, "uint8": np.uint8}


class ConversionError(ValueError):
    """The model uses something this converter does not handle."""


@dataclass(frozen=True)
class TfjsModel:
    """A parsed graph model: its nodes by name and its weights as numpy arrays."""

    nodes: dict[str, dict[str, Any]]
    weights: dict[str, np.ndarray[Any, Any]]
    inputs: list[str]


def load_tfjs(model_json: Path) -> TfjsModel:
    """Reads model.json and the weight files it names (in the same directory)."""
    spec = json.loads(model_json.read_text())
    if spec.get("format") != "graph-model":
        raise ConversionError(f"{model_json}: not a TensorFlow.js graph model")
    nodes = {n["name"]: n for n in spec["modelTopology"]["node"]}
    weights: dict[str, np.ndarray[Any, Any]] = {}
    for group in spec["weightsManifest"]:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            shape = [int(d) for d in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = w.get("quantization")
            stored = np.dtype(_STORED[quant["dtype"] if quant else w["dtype"]])
            end = offset + count * stored.itemsize
            if end > len(data):
                raise ConversionError(f"{model_json}: weights file too short at {w['name']}")
            raw = np.frombuffer(data[offset:end], dtype=stored)
            offset = end
            if quant and quant["dtype"] == "uint8":
                raw = raw.astype(np.float32) * quant["scale"] + quant["min"]
            weights[w["name"]] = raw.astype(_STORED[w["dtype"]]).reshape(shape)
        if offset != len(data):
            raise ConversionError(f"{model_json}: {len(data) - offset} unread weight bytes")
    # The graph's inputs (TF's feed nodes): the only nodes without inputs that hold no value.
    inputs = [name for name, n in nodes.items() if not n.get("input") and n["op"] != "Const"]
    return TfjsModel(nodes=nodes, weights=weights, inputs=inputs)


def _attr_s(node: dict[str, Any], key: str) -> str:
    raw = node.get("attr", {}).get(key, {}).get("s", "")
    return base64.b64decode(raw).decode() if raw else ""


def _attr_list_s(node: dict[str, Any], key: str) -> list[str]:
    items = node.get("attr", {}).get(key, {}).get("list", {}).get("s", [])
    return [base64.b64decode(s).decode() for s in items]


def _attr_ints(node: dict[str, Any], key: str) -> list[int]:
    return [int(i) for i in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


def _attr_b(node: dict[str, Any], key: str) -> bool:
    return bool(node.get("attr", {}).get(key, {}).get("b", False))


class _Builder:
    """Emits ONNX nodes for TF nodes, one at a time, in dependency order."""

    def __init__(self, model: TfjsModel) -> None:
        self.model = model
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.done: dict[str, str] = {}  # TF tensor name → ONNX tensor name
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}__{self._n}"

    def const(self, value: np.ndarray[Any, Any], hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def emit(self, op: str, inputs: Sequence[str], hint: str, **attrs: Any) -> str:
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def weight(self, name: str) -> np.ndarray[Any, Any]:
        base = name.split(":")[0]
        if base not in self.model.weights:
            raise ConversionError(f"{name} is not a constant")
        return self.model.weights[base]

    def is_const(self, name: str) -> bool:
        base = name.split(":")[0]
        return self.model.nodes.get(base, {}).get("op") == "Const"

    def tensor(self, name: str) -> str:
        """The ONNX name of a TF activation (converting its producers first)."""
        if name.startswith("^"):
            raise ConversionError(f"control dependency {name} is not supported")
        if name in self.done:
            return self.done[name]
        stack = [name]
        while stack:
            current = stack[-1]
            if current in self.done:
                stack.pop()
                continue
            node = self.model.nodes.get(current.split(":")[0])
            if node is None:
                raise ConversionError(f"unknown tensor {current}")
            missing = [
                i
                for i in node.get("input", [])
                if not self.is_const(i) and i not in self.done and not i.startswith("^")
            ]
            if missing:
                stack.extend(missing)
                continue
            self.done[current] = self.convert(node)
            stack.pop()
        return self.done[name]

    def operand(self, name: str, hint: str) -> str:
        """An elementwise operand: an activation, or a constant laid out for NCHW."""
        if not self.is_const(name):
            return self.tensor(name)
        value = self.weight(name).astype(np.float32)
        if value.ndim == 1 and value.size > 1:  # per-channel vector, NHWC's last axis
            value = value.reshape(-1, 1, 1)
        elif value.ndim == 4:
            value = value.transpose(0, 3, 1, 2)
        return self.const(value, hint)

    def conv(
        self, node: dict[str, Any], x: str, w_hwio: np.ndarray[Any, Any], depthwise: bool
    ) -> str:
        if _attr_s(node, "data_format") not in ("", "NHWC"):
            raise ConversionError(f"{node['name']}: only NHWC is supported")
        strides = _attr_ints(node, "strides") or [1, 1, 1, 1]
        dilations = _attr_ints(node, "dilations") or [1, 1, 1, 1]
        padding = _attr_s(node, "padding")
        if padding not in ("SAME", "VALID"):
            raise ConversionError(f"{node['name']}: padding {padding} is not supported")
        kh, kw, cin, cout = w_hwio.shape
        if depthwise:  # HWCM → (C·M)1HW, one group per input channel
            w = w_hwio.transpose(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw)
            group = cin
        else:  # HWIO → OIHW
            w = w_hwio.transpose(3, 2, 0, 1)
            group = 1
        inputs = [x, self.const(np.ascontiguousarray(w, np.float32), "w")]
        fused = _attr_list_s(node, "fused_ops")
        args = node.get("input", [])[2:]
        if fused and fused[0] == "BiasAdd":
            inputs.append(self.const(self.weight(args[0]).astype(np.float32), "b"))
            fused = fused[1:]
        elif fused:
            raise ConversionError(f"{node['name']}: fused op {fused[0]} is not supported")
        y = self.emit(
            "Conv",
            inputs,
            "conv",
            strides=strides[1:3],
            dilations=dilations[1:3],
            group=group,
            kernel_shape=[kh, kw],
            auto_pad="SAME_UPPER" if padding == "SAME" else "VALID",
        )
        for act in fused:
            y = self.activation(act, y, node["name"])
        return y

    def activation(self, act: str, x: str, where: str) -> str:
        if act == "Relu":
            return self.emit("Relu", [x], "relu")
        if act == "Relu6":
            zero = self.const(np.array(0.0, np.float32), "zero")
            six = self.const(np.array(6.0, np.float32), "six")
            return self.emit("Clip", [x, zero, six], "relu6")
        if act == "Sigmoid":
            return self.emit("Sigmoid", [x], "sigmoid")
        raise ConversionError(f"{where}: activation {act} is not supported")

    def convert(self, node: dict[str, Any]) -> str:
        op, name, ins = node["op"], node["name"], node.get("input", [])
        if name in self.model.inputs:
            dims = node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])
            if len(dims) != 4:
                raise ConversionError(f"{name}: only 4-D NHWC inputs are supported")
            return self.emit("Transpose", [name], "nchw", perm=[0, 3, 1, 2])
        if op in ("_FusedConv2D", "Conv2D"):
            return self.conv(node, self.tensor(ins[0]), self.weight(ins[1]), depthwise=False)
        if op in ("FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
            return self.conv(node, self.tensor(ins[0]), self.weight(ins[1]), depthwise=True)
        if op in ("Relu", "Relu6", "Sigmoid"):
            return self.activation(op, self.tensor(ins[0]), name)
        if op in ("Mul", "Add", "AddV2", "Sub"):
            onnx_op = {"Mul": "Mul", "Add": "Add", "AddV2": "Add", "Sub": "Sub"}[op]
            a = self.operand(ins[0], "a")
            b = self.operand(ins[1], "b")
            return self.emit(onnx_op, [a, b], onnx_op.lower())
        if op == "Mean":
            axes = [NHWC_TO_NCHW[int(a)] for a in np.atleast_1d(self.weight(ins[1]))]
            keep = 1 if _attr_b(node, "keep_dims") else 0
            if not keep:
                raise ConversionError(f"{name}: Mean without keep_dims is not supported")
            return self.emit("ReduceMean", [self.tensor(ins[0])], "mean", axes=axes, keepdims=1)
        if op == "ConcatV2":
            axis = NHWC_TO_NCHW[int(self.weight(ins[-1]))]
            parts = [self.tensor(i) for i in ins[:-1]]
            return self.emit("Concat", parts, "concat", axis=axis)
        if op == "ResizeBilinear":
            x = self.tensor(ins[0])
            hw = self.weight(ins[1]).astype(np.int64)
            shape = self.emit("Shape", [x], "shape")
            nc = self.emit(
                "Slice",
                [
                    shape,
                    self.const(np.array([0], np.int64), "s0"),
                    self.const(np.array([2], np.int64), "s2"),
                ],
                "nc",
            )
            sizes = self.emit("Concat", [nc, self.const(hw, "hw")], "sizes", axis=0)
            if _attr_b(node, "align_corners"):
                mode = "align_corners"
            elif _attr_b(node, "half_pixel_centers"):
                mode = "half_pixel"
            else:
                mode = "asymmetric"
            return self.emit(
                "Resize",
                [x, "", "", sizes],
                "resize",
                mode="linear",
                coordinate_transformation_mode=mode,
            )
        if op == "Identity":
            return self.tensor(ins[0])
        raise ConversionError(f"{name}: op {op} is not supported")


def convert(model: TfjsModel, outputs: Sequence[str]) -> onnx.ModelProto:
    """The ONNX model computing ``outputs`` (TF tensor names), each as NCHW float32."""
    if len(model.inputs) != 1:
        raise ConversionError(f"expected one input, found {model.inputs}")
    builder = _Builder(model)
    results = [builder.tensor(o) for o in outputs]
    final = []
    for tf_name, onnx_name in zip(outputs, results, strict=True):
        out = tf_name.replace("/", "_")
        builder.nodes.append(helper.make_node("Identity", [onnx_name], [out]))
        final.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [None] * 4))
    dims = (
        model.nodes[model.inputs[0]]
        .get("attr", {})
        .get("shape", {})
        .get("shape", {})
        .get("dim", [])
    )
    shape = [int(d["size"]) for d in dims]
    graph = helper.make_graph(
        builder.nodes,
        "tfjs",
        [helper.make_tensor_value_info(model.inputs[0], TensorProto.FLOAT, shape)],
        final,
        builder.initializers,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="livecam-tfjs",
    )
    onnx_model.ir_version = 8  # readable by every onnxruntime of the last years
    onnx.checker.check_model(onnx_model)
    return onnx_model
