#!/usr/bin/env bash
# Rebuild the pretrained bundles shipped in vae_runtime (runtime/bundles/{cvae-16d,cvae,vae}) end to end:
# train on the full MNIST, then export ONNX + TFLite with every quantized variant within its quality bounds
# (the same files on any machine: docs/export.md), the int8 TFLite files marked `recommended`.
#
#   bash scripts/build_pretrained.sh [PATH/TO/mnist.npz]      (EPOCHS=40 for the 2-D models by default)
#
# cvae-16d is the default (docs/models.md): the seed's filter widths with a 16-D latent, beta 0.5, a 64-unit
# encoder layer, 20 epochs, sampled from a per-label Gaussian mixture prior at temperature 0.8; shipped lean
# (--only: ONNX, the fp32 and int8 TFLite decoders, the int8 TFLite encoder) to stay under 3 MB.
# cvae and vae are the seed's 2-D models, sampled from N(0, I): the ones to explore a latent space with.
# cvae-hq, the former quality model (docs/quality.md), is no longer embedded: it is built into
# bench/bundles/ as the reference that bench/run.py --compare and bench/frontier.py measure against.
# It also trains the MNIST classifier that vae-eval judges generated digits with
# (runtime/bundles/classifier.onnx, and its TFLite twin for TFLite-only installs). An interrupted run
# picks up where it stopped: run the script again.
set -euo pipefail
data=${1:-../shared/data/mnist.npz}
epochs=${EPOCHS:-40}
cd "$(dirname "$0")/.."

train() {  # NAME EPOCHS [vae-train options]: train runs/NAME, or finish it if it was interrupted
  local run=runs/$1 total=$2
  shift 2
  if [ -f "$run/config.json" ]; then
    grep -q '"status": "complete"' "$run/config.json" || vae-train --out "$run" --resume --epochs "$total" --data "$data"
  else
    vae-train --epochs "$total" --data "$data" --out "$run" --seed 0 "$@"
  fi
}

train pretrained-cvae "$epochs" --model cvae
train pretrained-vae "$epochs" --model vae
train cvae-16d 20 --model cvae --latent-dim 16 --beta 0.5 --dense-units 64
train cvae-hq 10 --model cvae --latent-dim 16 --beta 0.5 --filters 64 128 --dense-units 128
vae-export all runs/pretrained-cvae --out runtime/bundles/cvae --force --data "$data"
vae-export all runs/pretrained-vae --out runtime/bundles/vae --force --data "$data"
vae-export all runs/cvae-16d --out runtime/bundles/cvae-16d --force --data "$data" --prior 10 --temperature 0.8 \
  --only encoder.onnx,decoder.onnx,decoder.tflite,decoder.int8.tflite,encoder.int8.tflite
# the C library for microcontrollers (docs/c.md), kept in c/ and checked against this bundle in CI
vae-export c runs/cvae-16d --bundle runtime/bundles/cvae-16d --out c --force --data "$data"
vae-export all runs/cvae-hq --out bench/bundles/cvae-hq --force --data "$data" --prior 10 --temperature 0.7
[ -f runs/classifier/classifier.onnx ] || vae-train classifier --data "$data" --out runs/classifier --epochs 3
cp runs/classifier/classifier.onnx runtime/bundles/classifier.onnx
python scripts/classifier_tflite.py runtime/bundles/classifier.onnx runtime/bundles/classifier.tflite
