#!/usr/bin/env bash
# Rebuild the pretrained bundles shipped in vae_runtime (runtime/bundles/{cvae,vae}) end to end:
# train on the full MNIST, then export ONNX + TFLite with every quantized variant that passes.
#
#   bash scripts/build_pretrained.sh [PATH/TO/mnist.npz]      (EPOCHS=40 by default)
#
# It also trains the MNIST classifier that vae-eval judges generated digits with
# (runtime/bundles/classifier.onnx).
#
# An interrupted run picks up where it stopped: run the script again.
set -euo pipefail
data=${1:-../shared/data/mnist.npz}
epochs=${EPOCHS:-40}
cd "$(dirname "$0")/.."
for kind in cvae vae; do
  run=runs/pretrained-$kind
  if [ -f "$run/config.json" ]; then
    grep -q '"status": "complete"' "$run/config.json" || vae-train --out "$run" --resume --epochs "$epochs" --data "$data"
  else
    vae-train --model "$kind" --epochs "$epochs" --data "$data" --out "$run" --seed 0
  fi
  vae-export all "$run" --out "runtime/bundles/$kind" --force
done
[ -f runs/classifier/classifier.onnx ] || vae-train classifier --data "$data" --out runs/classifier --epochs 3
cp runs/classifier/classifier.onnx runtime/bundles/classifier.onnx
