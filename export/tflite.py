"""TFLite export: one file per model with a signature for each of a few fixed batch sizes.

Static shapes matter on LiteRT: with a dynamic batch the converter computes every TRANSPOSE_CONV
output shape at run time, and XNNPACK (LiteRT's fast CPU kernels) only takes a transposed convolution
whose output shape is static. The signatures share one copy of the weights.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras

from vae_export.pipeline import Calibration, Report, export, lines
from vae_export.source import TrainedRun
from vae_runtime.errors import VaeDigitsError
from vae_runtime.manifest import Manifest

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")
_PRECISION = {"float16": "fp16", "dynamic": "dynamic", "int8": "int8"}
# One signature per size; a request is cut into these (the last chunk padded). Chosen by measurement:
# 1 for single digits, 128 for bulk (XNNPACK's best per digit here), 16 for what lies between.
BATCH_SIZES = (1, 16, 128)


def signature_key(batch: int) -> str:
    return f"batch_{batch}"


def export_tflite(
    run_dir: str | Path,
    out: str | Path,
    *,
    quantize: tuple[str, ...] = (),
    atol: float = 1e-4,
    force: bool = False,
    data: str | None = None,
    report: Report = print,
) -> Manifest:
    """Export a finished vae-train run to .tflite files in bundle `out`, checked against Keras.

    `quantize` adds variants: "float16", "dynamic" (dynamic-range int8 weights) and "int8"
    (full integer, calibrated on training digits; float32 inputs and outputs). A variant over
    its error bound against fp32 is not shipped; a variant is never the default.

    Example:
        >>> manifest = export_tflite("runs/cvae", "bundles/cvae", quantize=("float16",))
        >>> sorted(f.path for f in manifest.files if f.format == "tflite")
        ['decoder.fp16.tflite', 'decoder.tflite', 'encoder.fp16.tflite', 'encoder.tflite']
    """
    return export(
        run_dir, out, [TfliteFormat(quantize)], atol=atol, force=force, data=data, progress=lines(report)
    )


@dataclass(frozen=True)
class TfliteFormat:
    quantize: tuple[str, ...] = ()
    name: str = "tflite"

    def __post_init__(self) -> None:
        unknown = set(self.quantize) - set(QUANTIZE_MODES)
        if unknown:
            raise VaeDigitsError(
                f"unknown --quantize mode {sorted(unknown)[0]!r}; use one of {QUANTIZE_MODES}"
            )

    def precisions(self, role: str) -> tuple[str, ...]:
        modes = [mode for mode in QUANTIZE_MODES[1:] if mode in self.quantize]
        return ("fp32", *(_PRECISION[mode] for mode in modes))

    def convert(
        self,
        model: keras.Model,
        run: TrainedRun,
        role: str,
        precision: str,
        path: Path,
        calibration: Calibration,
    ) -> None:
        import tensorflow as tf

        with tempfile.TemporaryDirectory() as saved:
            _save_signatures(model, BATCH_SIZES, saved)
            keys = [signature_key(batch) for batch in BATCH_SIZES]
            converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=keys)
            if precision != "fp32":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if precision == "fp16":
                converter.target_spec.supported_types = [tf.float16]
            if precision == "int8":
                converter.representative_dataset = _calibration_samples(calibration())
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            path.write_bytes(converter.convert())

    def batch_sizes(self) -> tuple[int, ...]:
        return BATCH_SIZES

    def producer(self) -> dict[str, object]:
        import tensorflow as tf

        return {"tflite_converter": tf.__version__}


def _save_signatures(model: keras.Model, batch_sizes: tuple[int, ...], directory: str) -> None:
    """A SavedModel of `model` with one signature per batch size, sharing the model's variables."""
    import tensorflow as tf

    def signature(batch: int):
        specs = [tf.TensorSpec([batch, *i.shape[1:]], tf.float32, name=i.name) for i in model.inputs]
        return tf.function(lambda *inputs: model(list(inputs), training=False), input_signature=specs)

    module = tf.Module()
    # Keras 3 variables are not tracked by a tf.Module: hold their tf.Variables, or the file is weightless
    # (tf.Module tracks any attribute set on it; its stubs declare none, hence the ignore)
    module.variables_to_keep = [weight.value for weight in model.weights]  # type: ignore[attr-defined]
    functions = {signature_key(batch): signature(batch) for batch in batch_sizes}
    for key, function in functions.items():
        setattr(module, key, function)
    concrete = {key: function.get_concrete_function() for key, function in functions.items()}
    tf.saved_model.save(module, directory, signatures=concrete)


def _calibration_samples(feeds: dict):
    """Representative inputs for every signature: (signature key, {input: one batch})."""

    def samples():
        count = len(next(iter(feeds.values())))
        for batch in BATCH_SIZES:
            for start in range(0, count - batch + 1, max(batch, count // 64)):
                yield (
                    signature_key(batch),
                    {name: array[start : start + batch] for name, array in feeds.items()},
                )

    return samples
