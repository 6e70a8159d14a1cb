#!/usr/bin/env bash
# Rebuild isa/core/encoders/minilm-tools-int8.onnx and the transfer table (tools/train_encoder/README.md).
# TRAIN_PY: python of the training venv (requirements.txt); run from the repository root.
set -euo pipefail
TRAIN_PY=${TRAIN_PY:-/work/venvs/train/bin/python}
WORK=${WORK:-/tmp/isa-encoder}
export HF_HUB_OFFLINE=1
mkdir -p "$WORK"
.venv/bin/python tools/train_encoder/prepare.py --out "$WORK/data.json"
common=(--data "$WORK/data.json" --steps 80 --batch 24 --queries 800 --lr 1e-4 --seed 0)
"$TRAIN_PY" tools/train_encoder/train.py "${common[@]}" --datasets metatool --out "$WORK/mt"
"$TRAIN_PY" tools/train_encoder/train.py "${common[@]}" --datasets toollens --out "$WORK/tl"
"$TRAIN_PY" tools/train_encoder/train.py "${common[@]}" --datasets metatool,toollens --out "$WORK/both"
for m in mt tl both; do .venv/bin/python tools/train_encoder/export.py "$WORK/$m" "$WORK/$m.onnx"; done
.venv/bin/python tools/train_encoder/evaluate.py --split test --max-queries 500 \
    --candidate "metatool-trained=$WORK/mt.onnx:toollens" --candidate "toollens-trained=$WORK/tl.onnx:metatool" \
    --candidate "both-trained=$WORK/both.onnx:metatool,toollens"
