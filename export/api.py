"""The export API: `export_bundle`, everything `vae-export` does, as one function."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

from vae_export.onnx import DEFAULT_OPSET, OnnxFormat
from vae_export.pipeline import Format, Progress, export
from vae_export.tflite import TfliteFormat
from vae_runtime.errors import VaeDigitsError
from vae_runtime.manifest import Manifest

FORMATS = ("onnx", "tflite")
# the quantized variants each format can add to its fp32 files (vae-export's --quantize values)
VARIANTS = {"onnx": ("int8",), "tflite": ("float16", "dynamic", "int8")}


def export_bundle(
    run_dir: str | Path,
    out: str | Path,
    *,
    formats: Sequence[str] = FORMATS,
    variants: Sequence[str] | Literal["all"] = (),
    opset: int = DEFAULT_OPSET,
    prior: int = 0,
    temperature: float | None = None,
    only: Collection[str] | None = None,
    atol: float = 1e-4,
    force: bool = False,
    data: str | Path | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Export a finished vae-train run to a bundle: what `vae-export onnx|tflite|all` does.

    Every file is checked before it is kept: an fp32 file against Keras (a ParityError past `atol`),
    a quantized variant against fp32 (over its error bounds it is not written, and the manifest lists
    it under `omitted`). Nothing is written to `out` unless the whole export succeeds.

    Args:
        run_dir: A finished vae-train run directory.
        out: The bundle directory to write.
        formats: "onnx" (tf2onnx) and/or "tflite" (a signature per static batch size).
        variants: Quantized variants to add to the fp32 files, each made by the formats that have
            it: "int8" (ONNX and TFLite), "float16" and "dynamic" (TFLite); "all" for every variant
            of every format (`vae-export all`).
        opset: The ONNX opset, 13-18.
        prior: Fit a Gaussian mixture of this many components per label to the training latents and
            write it as prior.json, which `Generator.generate` then samples (0: none, N(0, I)).
        temperature: The bundle's default sampling temperature (None: keep the bundle's, else 1.0).
        only: Write just these model files, a lean bundle (e.g. {"decoder.int8.tflite",
            "encoder.int8.tflite"}); a bundle keeps an encoder and a decoder of each format.
        atol: The largest absolute difference from Keras allowed for an fp32 file.
        force: Replace files (or another run's bundle) in `out`.
        data: MNIST (an npz or a directory of IDX files) for the checks; None: the run's own.
        progress: Called with each `ExportStep` of the export: its line of text and the counted steps
            done of the total (None: silent).

    Returns:
        The written bundle's manifest.

    Raises:
        VaeDigitsError: A bad argument, a run that is not finished, or an `out` that may not be
            written; WorkError (a VaeDigitsError) when a file fails its checks.

    Example:
        >>> from vae_export import export_bundle
        >>> def show(step):
        ...     print(f"[{step.done}/{step.total}] {step.text}")
        >>> manifest = export_bundle("runs/cvae", "bundles/cvae", variants=("int8",), prior=10, progress=show)
        >>> sorted(f.path for f in manifest.files)[:3]
        ['decoder.int8.onnx', 'decoder.int8.tflite', 'decoder.onnx']
    """
    chosen = export_formats(formats, variants, opset)
    return export(
        run_dir,
        out,
        chosen,
        atol=atol,
        force=force,
        data=None if data is None else str(data),
        prior=prior,
        temperature=temperature,
        only=only,
        progress=progress,
    )


def export_formats(
    formats: Sequence[str], variants: Sequence[str] | Literal["all"], opset: int = DEFAULT_OPSET
) -> list[Format]:
    """The `Format` of each of `formats`, with the `variants` it makes; a VaeDigitsError names a bad one."""
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise VaeDigitsError(
            f"unknown format {unknown[0]!r}; use onnx, tflite or both" if unknown else "no format"
        )
    offered = {variant for name in formats for variant in VARIANTS[name]}
    wanted = offered if variants == "all" else set(variants)
    extra = sorted(wanted - offered)
    if extra:
        choices = ", ".join(sorted(offered))
        raise VaeDigitsError(
            f"variant {extra[0]!r} is not made by {' or '.join(formats)}; choose from {choices}"
        )
    made = {name: tuple(v for v in VARIANTS[name] if v in wanted) for name in formats}
    return [
        OnnxFormat(opset, made[name]) if name == "onnx" else TfliteFormat(made[name])
        for name in dict.fromkeys(formats)
    ]
