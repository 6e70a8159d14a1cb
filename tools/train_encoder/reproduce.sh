#!/usr/bin/env bash
# Rebuild isa/core/encoders/minilm-tools-int8.onnx (the third recipe: MetaTool, ToolLens and the MCP servers' train
# split) and its test table (tools/train_encoder/README.md). About 40 minutes of torch CPU on 2 cores.
# TRAIN_PY: python of the training venv (requirements.txt); run from the repository root.
# TRANSFER=1 also trains on MetaTool alone and ToolLens alone and reads each on the other (2 × 40 minutes more).
set -euo pipefail
TRAIN_PY=${TRAIN_PY:-/work/venvs/train/bin/python}
WORK=${WORK:-/tmp/isa-encoder}
export HF_HUB_OFFLINE=1
mkdir -p "$WORK"
.venv/bin/python tools/train_encoder/prepare.py --out "$WORK/data.json"
recipe=(--data "$WORK/data.json" --steps 800 --batch 32 --queries 5000 --pairs 0.3 --freeze 2 --threads 2
    --query-tokens 96 --tool-tokens 96 --lr 5e-5 --seed 0)
"$TRAIN_PY" tools/train_encoder/train.py "${recipe[@]}" --datasets metatool,toollens,mcp --out "$WORK/all"
.venv/bin/python tools/train_encoder/export.py "$WORK/all" "$WORK/all.onnx"
candidates=(--candidate "all-trained=$WORK/all.onnx:metatool,toollens,mcp")
if [[ "${TRANSFER:-0}" == 1 ]]; then
    "$TRAIN_PY" tools/train_encoder/train.py "${recipe[@]}" --datasets metatool --out "$WORK/mt"
    "$TRAIN_PY" tools/train_encoder/train.py "${recipe[@]}" --datasets toollens --out "$WORK/tl"
    for m in mt tl; do .venv/bin/python tools/train_encoder/export.py "$WORK/$m" "$WORK/$m.onnx"; done
    candidates+=(--candidate "metatool-trained=$WORK/mt.onnx:toollens,mcp" --candidate "toollens-trained=$WORK/tl.onnx:metatool,mcp")
fi
.venv/bin/python tools/train_encoder/evaluate.py --split test --max-queries 500 "${candidates[@]}"
