"""`vae-export onnx|tflite|all RUN_DIR --out BUNDLE_DIR`: a validated model bundle from a run."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vae_runtime._cli import run
from vae_train.quiet import import_tensorflow_quietly

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Export a finished vae-train run to a validated ONNX / TFLite bundle.",
)


class OnnxQuantize(StrEnum):
    none = "none"
    int8 = "int8"


class TfliteQuantize(StrEnum):
    none = "none"
    float16 = "float16"
    dynamic = "dynamic"
    int8 = "int8"


RunDir = Annotated[Path, typer.Argument(help="a finished vae-train run directory")]
Out = Annotated[Path, typer.Option(help="the bundle directory to write")]
Opset = Annotated[int, typer.Option(help="ONNX opset", min=13, max=18)]
Atol = Annotated[float, typer.Option(help="max abs diff allowed against Keras (fp32 files)")]
Force = Annotated[bool, typer.Option(help="replace files (or another run's bundle) in --out")]
Data = Annotated[
    Path | None,
    typer.Option(
        help="MNIST npz / IDX directory for the checks [default: the run's data]", show_default=False
    ),
]


@app.command()
def onnx(
    run_dir: RunDir,
    out: Out,
    opset: Opset = 17,
    quantize: Annotated[list[OnnxQuantize] | None, typer.Option(help="int8 adds a QDQ decoder")] = None,
    atol: Atol = 1e-4,
    force: Force = False,
    data: Data = None,
) -> None:
    """Encoder and decoder as ONNX (tf2onnx)."""
    _export(run_dir, out, {"onnx": {"opset": opset, "quantize": _modes(quantize)}}, atol, force, data)


@app.command()
def tflite(
    run_dir: RunDir,
    out: Out,
    quantize: Annotated[list[TfliteQuantize] | None, typer.Option(help="repeatable")] = None,
    atol: Atol = 1e-4,
    force: Force = False,
    data: Data = None,
) -> None:
    """Encoder and decoder as TFLite, with optional quantized variants."""
    _export(run_dir, out, {"tflite": {"quantize": _modes(quantize)}}, atol, force, data)


@app.command(name="all")
def all_formats(
    run_dir: RunDir,
    out: Out,
    opset: Opset = 17,
    atol: Atol = 1e-4,
    force: Force = False,
    data: Data = None,
) -> None:
    """ONNX and TFLite fp32, plus every quantized variant that passes its checks."""
    formats = {
        "onnx": {"opset": opset, "quantize": _modes(list(OnnxQuantize))},
        "tflite": {"quantize": _modes(list(TfliteQuantize))},
    }
    _export(run_dir, out, formats, atol, force, data)


def _modes(quantize: list[StrEnum] | None) -> tuple[str, ...]:
    return tuple(mode.value for mode in quantize or () if mode.value != "none")


def _export(run_dir: Path, out: Path, formats: dict, atol: float, force: bool, data) -> None:
    if not atol > 0:
        raise typer.BadParameter(f"--atol must be a positive number, not {atol}")
    import_tensorflow_quietly()
    from vae_export.onnx import OnnxFormat
    from vae_export.pipeline import export
    from vae_export.tflite import TfliteFormat

    classes = {"onnx": OnnxFormat, "tflite": TfliteFormat}
    chosen = [classes[name](**options) for name, options in formats.items()]
    manifest = export(
        run_dir, out, chosen, atol=atol, force=force, data=str(data) if data else None, report=typer.echo
    )
    typer.echo(f"wrote {len(manifest.files)} model files and manifest.json to {out}")


def main() -> None:
    run(app)
