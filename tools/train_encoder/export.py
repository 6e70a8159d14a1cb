"""Step 3 of 3 (isa's venv): the trained weights to the int8 ONNX graph isa serves, by isa's own path.

    .venv/bin/python tools/train_encoder/export.py /tmp/enc/both isa/core/encoders/minilm-tools-int8.onnx
    .venv/bin/python tools/train_encoder/export.py /tmp/enc/v2 /tmp/enc/v2-b05.onnx --blend 0.5

minilm_graph.build writes the same graph as for the stock model, quantize() the same per-channel int8.
`--blend A` exports stock + A * (trained - stock), tensor by tensor (weight-space ensembling, "WiSE-FT",
Wortsman et al. 2022): A = 1 is the trained model, A = 0 the stock one. A fine-tune on two catalogs learns their
phrasing; pulling it part of the way back keeps some of the stock model's reading of text nobody trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from safetensors.numpy import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.core import minilm_graph
from isa.core.embeddings import default_model_dir as stock_dir
from isa.core.embeddings import quantize


def blended(model_dir: Path, alpha: float, into: Path) -> Path:
    """A model folder like model_dir whose weights are stock + alpha * (trained - stock)."""
    stock, tuned = load_file(str(stock_dir() / "model.safetensors")), load_file(str(model_dir / "model.safetensors"))
    if stock.keys() != tuned.keys():
        raise SystemExit(f"{model_dir} does not have the stock model's tensors")
    shutil.copytree(model_dir, into, dirs_exist_ok=True)
    mixed = {k: (v + alpha * (tuned[k] - v)).astype(v.dtype) for k, v in stock.items()}
    save_file(mixed, str(into / "model.safetensors"))
    return into


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", type=Path, help="train.py's output folder")
    parser.add_argument("out", type=Path)
    parser.add_argument("--blend", type=float, default=1.0, help="share of the fine-tune's change kept (0..1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = args.model_dir if args.blend == 1.0 else blended(args.model_dir, args.blend, Path(tmp) / "m")
        graph = quantize(minilm_graph.build(source))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(graph)
    print(f"{args.out}: {len(graph) / 1e6:.1f} MB, sha256 {hashlib.sha256(graph).hexdigest()}")


if __name__ == "__main__":
    main()
