"""TFLite export with TFLiteConverter.from_keras_model: fp32 and quantized variants."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras

from vae_export.pipeline import Calibration, Report, export
from vae_export.source import TrainedRun
from vae_runtime.errors import VaeDigitsError
from vae_runtime.manifest import Manifest

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")
_PRECISION = {"float16": "fp16", "dynamic": "dynamic", "int8": "int8"}


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
    its error bound against fp32 is not shipped; one slower than fp32 is never the default.

    Example:
        >>> manifest = export_tflite("runs/cvae", "bundles/cvae", quantize=("float16",))
        >>> sorted(f.path for f in manifest.files if f.format == "tflite")
        ['decoder.fp16.tflite', 'decoder.tflite', 'encoder.fp16.tflite', 'encoder.tflite']
    """
    return export(run_dir, out, [TfliteFormat(quantize)], atol=atol, force=force, data=data, report=report)


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

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if precision != "fp32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if precision == "int8":
            feeds = calibration()
            order = [i.name for i in model.inputs]
            converter.representative_dataset = lambda: (
                [feeds[name][i : i + 1] for name in order] for i in range(len(feeds[order[0]]))
            )
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        path.write_bytes(converter.convert())

    def producer(self) -> dict[str, object]:
        import tensorflow as tf

        return {"tflite_converter": tf.__version__}
