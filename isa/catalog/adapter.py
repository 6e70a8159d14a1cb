"""An optional learned query-side linear map: q' = normalise(q + q A), trained by tests/bench/train_discovery.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


class QueryAdapter:
    """Moves query embeddings towards the tools that answered similar queries; the catalog is not re-embedded."""

    def __init__(self, matrix: npt.NDArray[np.float32], model: str) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"adapter matrix must be square, got {matrix.shape}")
        self.matrix = matrix.astype(np.float32)
        self.model = model

    @classmethod
    def load(cls, path: Path) -> QueryAdapter:
        """An .npz written by the training script: `A` (d x d) and `model` (the embedding model it was fit for)."""
        with np.load(path) as data:
            return cls(np.asarray(data["A"], dtype=np.float32), str(data["model"]))

    def apply(self, vector: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        q = np.asarray(vector, dtype=np.float32)
        out = q + q @ self.matrix
        norm = float(np.linalg.norm(out))
        return (out / np.float32(max(norm, 1e-12))).astype(np.float32)
