#!/usr/bin/env bash
# Rebuild the pretrained bundles shipped in vae_runtime (runtime/bundles/{cvae-16d,cvae,vae}) end to end:
# train on the full MNIST, then export ONNX + TFLite with every quantized variant within its quality bounds
# (the same files on any machine: docs/export.md), the int8 TFLite files marked `recommended`.
#
#   bash scripts/build_pretrained.sh [PATH/TO/mnist.npz]      (EPOCHS=40 for the 2-D models by default)
#
# cvae-16d is the default (docs/models.md): the seed's filter widths with a 16-D latent, a 64-unit encoder
# layer, the sigma-VAE likelihood (one learned variance), a cosine learning rate, 20 epochs, sampled from a
# 30-component Gaussian mixture prior per label at temperature 0.7; shipped lean (--only: ONNX, the fp32
# TFLite decoder, the int8 TFLite encoder) to stay under 3 MB. cvae-tiny is the same recipe at half the decoder's compute
# (filters 24/44, upsampling + convolution, 5.9 MFLOP a digit), for microcontrollers with 128 KB of RAM.
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
sigma=(--model cvae --latent-dim 16 --dense-units 64 --likelihood gaussian --lr-schedule cosine)
train cvae-16d-sigma 20 "${sigma[@]}"
train cvae-tiny 20 "${sigma[@]}" --filters 24 44 --decoder upsample --kl-warmup 2
train cvae-hq 10 --model cvae --latent-dim 16 --beta 0.5 --filters 64 128 --dense-units 128
vae-export all runs/pretrained-cvae --out runtime/bundles/cvae --force --data "$data"
vae-export all runs/pretrained-vae --out runtime/bundles/vae --force --data "$data"
vae-export all runs/cvae-16d-sigma --out runtime/bundles/cvae-16d --force --data "$data" --prior 30 --temperature 0.7 \
  --only encoder.onnx,decoder.onnx,decoder.tflite,encoder.int8.tflite
vae-export all runs/cvae-tiny --out runtime/bundles/cvae-tiny --force --data "$data" --prior 30 --temperature 0.7 \
  --only encoder.onnx,decoder.onnx,decoder.tflite,decoder.int8.tflite,encoder.int8.tflite
# the C library for microcontrollers (docs/c.md), kept in c/ and checked against this bundle in CI; the tiny
# bundle's, for docs/c.md's small-board row, in build/c-tiny (`bench/c_library.py --c-dir build/c-tiny
# --bundle cvae-tiny` measures it)
vae-export c runs/cvae-16d-sigma --bundle runtime/bundles/cvae-16d --out c --force --data "$data"
vae-export c runs/cvae-tiny --bundle runtime/bundles/cvae-tiny --out build/c-tiny --force --data "$data"
vae-export all runs/cvae-hq --out bench/bundles/cvae-hq --force --data "$data" --prior 10 --temperature 0.7
[ -f runs/classifier/classifier.onnx ] || vae-train classifier --data "$data" --out runs/classifier --epochs 3
cp runs/classifier/classifier.onnx runtime/bundles/classifier.onnx
python scripts/classifier_tflite.py runtime/bundles/classifier.onnx runtime/bundles/classifier.tflite
# the pictures of README and docs/: a row per label, seed 0 (a 6x6 grid for the VAE)
for bundle in runtime/bundles/cvae-16d runtime/bundles/cvae-tiny runtime/bundles/cvae bench/bundles/cvae-hq; do
  vae-generate --bundle "$bundle" --count 12 --seed 0 --out "docs/$(basename "$bundle").png" --force
done
vae-generate --bundle runtime/bundles/vae --count 36 --seed 0 --out docs/vae.png --force
