"""The TFLite twin of vae-eval's classifier, so that vae-eval runs where only a TFLite interpreter is.

    python scripts/classifier_tflite.py runtime/bundles/classifier.onnx runtime/bundles/classifier.tflite

Rebuilds the Keras classifier (vae_train.classifier.build_classifier) with the ONNX file's weights, checks
that it gives the ONNX file's outputs, converts it with the static batch signatures of the bundles'
TFLite files, checks the TFLite file against the ONNX one on the test digits in tests/data, and writes
it (to a temporary file renamed into place). scripts/build_pretrained.sh runs it after training the
classifier. Needs vae-digits[train].
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ATOL = 1e-4
PROBE = Path(__file__).parents[1] / "tests" / "data" / "mnist_small.npz"


def keras_from_onnx(onnx_path: Path):
    """The Keras judge (image -> features, probabilities) with the weights of the ONNX classifier."""
    import onnx
    from onnx import numpy_helper

    from vae_train.classifier import build_classifier, judge

    by_shape = {
        tuple(array.shape): array
        for array in (numpy_helper.to_array(t) for t in onnx.load(str(onnx_path)).graph.initializer)
    }
    model = build_classifier()
    weights = []
    for weight in model.weights:
        shape = tuple(weight.shape)
        if len(shape) == 4:  # Keras's kernels are (h, w, in, out), ONNX's (out, in, h, w)
            weights.append(by_shape[(shape[3], shape[2], shape[0], shape[1])].transpose(2, 3, 1, 0))
        else:
            weights.append(by_shape[shape])
    model.set_weights(weights)
    return judge(model)


def convert(onnx_path: Path, out: Path) -> float:
    """Write the TFLite classifier; return its largest difference from the ONNX one on the probe."""
    import tensorflow as tf

    from vae_export.tflite import BATCH_SIZES, _save_signatures, signature_key
    from vae_runtime.backends import open_model
    from vae_runtime.errors import VaeDigitsError
    from vae_runtime.fileio import atomic_write_bytes

    images = (np.load(PROBE)["x_test"][:256].astype(np.float32) / 255.0)[..., None]
    reference = open_model(onnx_path, "onnx").run({"image": images})
    model = keras_from_onnx(onnx_path)
    _check("Keras rebuilt from ONNX", model.predict(images, verbose=0), reference, VaeDigitsError)
    with tempfile.TemporaryDirectory() as saved:
        _save_signatures(model, BATCH_SIZES, saved)
        keys = [signature_key(batch) for batch in BATCH_SIZES]
        data = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=keys).convert()
    with tempfile.TemporaryDirectory() as scratch:
        candidate = Path(scratch) / out.name
        candidate.write_bytes(data)
        got = open_model(candidate, "tflite").run({"image": images})
    worst = _check("TFLite", got, reference, VaeDigitsError)
    atomic_write_bytes(out, data)
    return worst


def _check(what: str, got: dict, expected: dict, error: type[Exception]) -> float:
    worst = max(float(np.abs(got[name] - expected[name]).max()) for name in ("features", "probabilities"))
    if worst > ATOL:
        raise error(f"the {what} classifier differs from the ONNX one by {worst:.2g}; nothing written")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if not args.onnx.is_file():
        sys.exit(f"classifier_tflite: no file {args.onnx}")
    worst = convert(args.onnx, args.out)
    print(f"wrote {args.out}: at most {worst:.2g} from {args.onnx} on {PROBE.name}")


if __name__ == "__main__":
    main()
