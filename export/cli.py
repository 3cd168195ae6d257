"""`vae-export onnx|tflite|all RUN_DIR --out BUNDLE_DIR`: a validated model bundle from a run."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from vae_runtime.clikit.common import Version, data_option, integer, main, new_app, number

app = new_app("Export a finished vae-train run to a validated ONNX / TFLite bundle.", commands=True)


class OnnxQuantize(StrEnum):
    none = "none"
    int8 = "int8"


class TfliteQuantize(StrEnum):
    none = "none"
    float16 = "float16"
    dynamic = "dynamic"
    int8 = "int8"


RunDir = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A finished vae-train run directory.")]
Out = Annotated[Path, typer.Option(metavar="DIR", help="The bundle directory to write.", show_default=False)]
Atol = Annotated[
    float, typer.Option(parser=number(1e-12, 1.0), help="Max abs diff allowed against Keras (fp32 files).")
]
Opset = Annotated[int, typer.Option(parser=integer(13, 18), help="ONNX opset, 13-18.")]
Data = Annotated[
    Path | None, data_option("MNIST npz / IDX directory for the checks (default: the run's data).")
]
ForceBundle = Annotated[
    bool, typer.Option("--force", help="Replace files (or another run's bundle) in --out.")
]


EXAMPLES = """[b]Examples[/b]

  vae-export all runs/cvae --out bundles/cvae
  vae-export all runs/cvae --out bundles/edge --only decoder.int8.tflite,encoder.int8.tflite
  vae-export onnx runs/cvae --out bundles/cvae --opset 17
  vae-export tflite runs/cvae --out bundles/cvae --quantize int8
"""
Prior = Annotated[
    int,
    typer.Option(
        parser=integer(0, 64),
        metavar="K",
        help="Fit a K-component Gaussian mixture per label to the training latents (prior.json); "
        "generate then samples from it. 0: N(0, I). Worth it for latents above 2-D.",
    ),
]
Temperature = Annotated[
    float | None,
    typer.Option(
        parser=number(0.01, 10), help="The bundle's default sampling temperature.", show_default=False
    ),
]
Only = Annotated[
    list[str] | None,
    typer.Option(
        metavar="FILES",
        help="Write only these model files, comma-separated or repeated (a lean bundle), e.g. "
        "decoder.int8.tflite,encoder.int8.tflite: an encoder and a decoder of each format kept.",
        show_default=False,
    ),
]


@app.callback(epilog=EXAMPLES)
def export(version: Version = False) -> None:
    """Export a finished vae-train run to a bundle: every file is checked against Keras before it is kept."""


@app.command(epilog="[b]Example[/b]  vae-export onnx runs/cvae --out bundles/cvae --quantize int8")
def onnx(
    run_dir: RunDir,
    out: Out,
    opset: Opset = 17,
    quantize: Annotated[
        list[OnnxQuantize] | None,
        typer.Option(help="int8 adds a QDQ decoder; repeatable.", show_default=False),
    ] = None,
    atol: Atol = 1e-4,
    force: ForceBundle = False,
    data: Data = None,
    prior: Prior = 0,
    temperature: Temperature = None,
    only: Only = None,
) -> None:
    """Encoder and decoder as ONNX (tf2onnx)."""
    chosen = {"formats": ("onnx",), "variants": _modes(quantize), "opset": opset}
    _export(run_dir, out, chosen, atol, force, data, prior, temperature, only)


@app.command(epilog="[b]Example[/b]  vae-export tflite runs/cvae --out bundles/cvae --quantize int8")
def tflite(
    run_dir: RunDir,
    out: Out,
    quantize: Annotated[
        list[TfliteQuantize] | None,
        typer.Option(help="Variants to add: float16, dynamic, int8; repeatable.", show_default=False),
    ] = None,
    atol: Atol = 1e-4,
    force: ForceBundle = False,
    data: Data = None,
    prior: Prior = 0,
    temperature: Temperature = None,
    only: Only = None,
) -> None:
    """Encoder and decoder as TFLite (a signature per static batch size), with optional quantized variants."""
    chosen = {"formats": ("tflite",), "variants": _modes(quantize)}
    _export(run_dir, out, chosen, atol, force, data, prior, temperature, only)


@app.command("all", epilog="[b]Example[/b]  vae-export all runs/cvae --out bundles/cvae")
def all_formats(
    run_dir: RunDir,
    out: Out,
    opset: Opset = 17,
    atol: Atol = 1e-4,
    force: ForceBundle = False,
    data: Data = None,
    prior: Prior = 0,
    temperature: Temperature = None,
    only: Only = None,
) -> None:
    """ONNX and TFLite fp32, plus every quantized variant within its quality bounds (whatever its speed
    here: the bundle is for other machines; vae-bench times the files where it runs)."""
    chosen = {"formats": ("onnx", "tflite"), "variants": "all", "opset": opset}
    _export(run_dir, out, chosen, atol, force, data, prior, temperature, only)


@app.command("c", epilog="[b]Example[/b]  vae-export c runs/cvae-16d --bundle bundles/cvae-16d --out c")
def c_library(
    run_dir: RunDir,
    out: Out,
    bundle: Annotated[
        Path,
        typer.Option(metavar="DIR", help="The run's exported bundle: its labels, prior and temperature.",
                     show_default=False),
    ],
    max_ram: Annotated[
        int | None,
        typer.Option(parser=integer(1024, 1 << 30), metavar="BYTES",
                     help="Fail when the C library needs more static RAM.", show_default=False),
    ] = None,
    force: ForceBundle = False,
    data: Data = None,
) -> None:
    """decoder.micro.tflite (int8, batch 1, checked in TFLM) and a C99 library, CLI and Cortex-M4 firmware
    generated from it (docs/c.md)."""
    from vae_train.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from vae_export.micro import export_c

    manifest = export_c(run_dir, bundle, out, data=str(data) if data else None, max_ram=max_ram, force=force)
    print(f"wrote {len(manifest['files'])} files to {out}: C static RAM {manifest['c_static_bytes']} bytes, "
          f"TFLM arena {manifest['arena_bytes']} bytes")


def _modes(quantize) -> tuple[str, ...]:
    return tuple(dict.fromkeys(mode.value for mode in quantize or () if mode.value != "none"))


def _export(
    run_dir: Path,
    out: Path,
    chosen: dict[str, Any],
    atol: float,
    force: bool,
    data: Path | None,
    prior: int,
    temperature: float | None,
    only: list[str] | None,
) -> None:
    from vae_runtime.clikit.progress import Progress
    from vae_train.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from vae_export.api import export_bundle
    from vae_export.pipeline import ExportStep

    names = None if only is None else [n.strip() for text in only for n in text.split(",") if n.strip()]
    with Progress(0, "exporting") as bar:

        def show(step: ExportStep) -> None:
            bar.line(step.text)
            bar.update(step.done, step.total)

        manifest = export_bundle(
            run_dir,
            out,
            **chosen,
            atol=atol,
            force=force,
            data=data,
            prior=prior,
            temperature=temperature,
            only=names,
            progress=show,
        )
    print(f"wrote {len(manifest.files)} files and manifest.json to {out}")


def run() -> None:
    main(app)
