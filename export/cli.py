"""`vae-export onnx|tflite|all RUN_DIR --out BUNDLE_DIR`: a validated model bundle from a run."""

from __future__ import annotations

from pathlib import Path

from vae_runtime._cli import Parser, add_mnist_option, integer, number, run, subcommands
from vae_train.quiet import import_tensorflow_quietly

ONNX_QUANTIZE = ("none", "int8")
TFLITE_QUANTIZE = ("none", "float16", "dynamic", "int8")


def onnx(
    run_dir: Path, out: Path, opset: int, quantize: list[str] | None, atol: float, force: bool, data
) -> None:
    _export(run_dir, out, {"onnx": {"opset": opset, "quantize": _modes(quantize)}}, atol, force, data)


def tflite(run_dir: Path, out: Path, quantize: list[str] | None, atol: float, force: bool, data) -> None:
    _export(run_dir, out, {"tflite": {"quantize": _modes(quantize)}}, atol, force, data)


def all_formats(run_dir: Path, out: Path, opset: int, atol: float, force: bool, data) -> None:
    formats = {
        "onnx": {"opset": opset, "quantize": _modes(ONNX_QUANTIZE)},
        "tflite": {"quantize": _modes(TFLITE_QUANTIZE)},
    }
    _export(run_dir, out, formats, atol, force, data)


def _modes(quantize) -> tuple[str, ...]:
    return tuple(dict.fromkeys(mode for mode in quantize or () if mode != "none"))


def _export(run_dir: Path, out: Path, formats: dict, atol: float, force: bool, data) -> None:
    import_tensorflow_quietly()
    from vae_export.onnx import OnnxFormat
    from vae_export.pipeline import export
    from vae_export.tflite import TfliteFormat

    classes = {"onnx": OnnxFormat, "tflite": TfliteFormat}
    chosen = [classes[name](**options) for name, options in formats.items()]
    manifest = export(
        run_dir, out, chosen, atol=atol, force=force, data=str(data) if data else None, report=print
    )
    print(f"wrote {len(manifest.files)} model files and manifest.json to {out}")


def parser() -> Parser:
    cli = Parser(description="Export a finished vae-train run to a validated ONNX / TFLite bundle.")
    add = subcommands(cli)
    sub = _command(add, "onnx", onnx, "encoder and decoder as ONNX (tf2onnx)")
    sub.add_argument("--opset", type=integer(13, 18), default=17, help="ONNX opset")
    sub.add_argument("--quantize", action="append", choices=ONNX_QUANTIZE, help="int8 adds a QDQ decoder")
    sub = _command(add, "tflite", tflite, "encoder and decoder as TFLite, with optional quantized variants")
    sub.add_argument("--quantize", action="append", choices=TFLITE_QUANTIZE, help="repeatable")
    sub = _command(
        add, "all", all_formats, "ONNX and TFLite fp32, plus every quantized variant that passes its checks"
    )
    sub.add_argument("--opset", type=integer(13, 18), default=17, help="ONNX opset")
    return cli


def _command(add, name: str, handler, help: str) -> Parser:
    sub = add(name, handler, help)
    sub.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished vae-train run directory")
    sub.add_argument("--out", type=Path, required=True, help="the bundle directory to write")
    sub.add_argument(
        "--atol", type=number(1e-12), default=1e-4, help="max abs diff allowed against Keras (fp32 files)"
    )
    sub.add_argument("--force", action="store_true", help="replace files (or another run's bundle) in --out")
    add_mnist_option(sub, "MNIST npz / IDX directory for the checks (default: the run's data)")
    return sub


def main() -> None:
    run(parser())
