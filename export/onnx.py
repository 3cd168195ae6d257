"""ONNX export with tf2onnx: fp32 encoder and decoder, and an int8 (static QDQ) decoder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from vae_export.pipeline import Calibration, Report, export, lines
from vae_export.source import TrainedRun
from vae_runtime.errors import VaeDigitsError
from vae_runtime.manifest import Manifest
from vae_train.api import to_onnx

OPSETS = range(13, 19)
DEFAULT_OPSET = 17
QUANTIZE_MODES = ("none", "int8")


def export_onnx(
    run_dir: str | Path,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    quantize: tuple[str, ...] = (),
    atol: float = 1e-4,
    force: bool = False,
    data: str | None = None,
    report: Report = print,
) -> Manifest:
    """Export a finished vae-train run to ONNX files in bundle `out`, each checked against Keras.

    `quantize=("int8",)` adds a statically quantized (QDQ) decoder calibrated on training latents.

    Example:
        >>> manifest = export_onnx("runs/cvae", "bundles/cvae", opset=17)
        >>> [f.path for f in manifest.files]
        ['decoder.onnx', 'encoder.onnx']
    """
    return export(
        run_dir, out, [OnnxFormat(opset, quantize)], atol=atol, force=force, data=data, progress=lines(report)
    )


@dataclass(frozen=True)
class OnnxFormat:
    opset: int = DEFAULT_OPSET
    quantize: tuple[str, ...] = ()
    name: str = "onnx"

    def __post_init__(self) -> None:
        if self.opset not in OPSETS:
            raise VaeDigitsError(
                f"--opset {self.opset} is not supported; use {OPSETS.start}-{OPSETS.stop - 1}"
            )
        unknown = set(self.quantize) - set(QUANTIZE_MODES)
        if unknown:
            raise VaeDigitsError(
                f"unknown ONNX quantize mode {sorted(unknown)[0]!r}; use one of {QUANTIZE_MODES}"
            )

    def precisions(self, role: str) -> tuple[str, ...]:
        int8 = ("int8",) if role == "decoder" and "int8" in self.quantize else ()
        return ("fp32", *int8)

    def convert(
        self,
        model: keras.Model,
        run: TrainedRun,
        role: str,
        precision: str,
        path: Path,
        calibration: Calibration,
    ) -> None:
        import onnx

        if precision == "fp32":
            proto = to_onnx(model, self.opset)
        else:
            fp32_path = path.with_name(f"{role}.onnx")
            proto = _quantize_static(fp32_path, calibration())
        _describe(proto, run, role, precision)
        onnx.checker.check_model(proto)
        onnx.save(proto, path)

    def batch_sizes(self) -> tuple[int, ...]:
        return ()  # one graph with a dynamic batch axis: onnxruntime needs no static shapes

    def producer(self) -> dict[str, object]:
        import onnx
        import tf2onnx

        return {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "onnx_opset": self.opset}


def _quantize_static(fp32_path: Path, feeds: dict[str, np.ndarray]):
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            count = len(next(iter(feeds.values())))
            self.batches = iter([{k: v[i : i + 64] for k, v in feeds.items()} for i in range(0, count, 64)])

        def get_next(self):
            return next(self.batches, None)

    quantized = fp32_path.with_name(f".{fp32_path.stem}.int8.tmp.onnx")
    try:
        quantize_static(
            str(fp32_path),
            str(quantized),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return onnx.load(quantized)
    finally:
        quantized.unlink(missing_ok=True)


def _describe(proto, run: TrainedRun, role: str, precision: str) -> None:
    """The key facts in metadata_props, so that a lone .onnx file describes itself."""
    facts = {
        "vae_digits.kind": run.kind,
        "vae_digits.role": role,
        "vae_digits.precision": precision,
        "vae_digits.latent_dim": str(run.latent_dim),
        "vae_digits.num_classes": str(run.num_classes),
        "vae_digits.labels": json.dumps([str(i) for i in range(run.num_classes)]),
        "vae_digits.run_id": run.run_id,
        "vae_digits.image": "float32 (batch, 28, 28, 1) in [0, 1]",
    }
    del proto.metadata_props[:]
    for key, value in facts.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "vae-digits"
    proto.doc_string = f"vae-digits {run.kind} {role} ({precision}), run {run.run_id}"
