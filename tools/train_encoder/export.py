"""Step 3 of 3 (isa's venv): the trained weights to the int8 ONNX graph isa serves, by isa's own path.

    .venv/bin/python tools/train_encoder/export.py /tmp/enc/both isa/core/encoders/minilm-tools-int8.onnx

minilm_graph.build writes the same graph as for the stock model, quantize() the same per-channel int8.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.core import minilm_graph
from isa.core.embeddings import quantize


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", type=Path, help="train.py's output folder")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    graph = quantize(minilm_graph.build(args.model_dir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(graph)
    print(f"{args.out}: {len(graph) / 1e6:.1f} MB, sha256 {hashlib.sha256(graph).hexdigest()}")


if __name__ == "__main__":
    main()
