"""`vae-generate`: digits of chosen labels from a bundle, as a PNG grid, PNG files or a .npy array."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated

import typer

from vae_runtime._cli import BundleOption, parse_label, run

MAX_COUNT = 10_000

app = typer.Typer(add_completion=False, rich_markup_mode=None)


class Backend(StrEnum):
    auto = "auto"
    onnx = "onnx"
    tflite = "tflite"


@app.command()
def generate(
    bundle: BundleOption = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            help="label (int or name), repeatable [default: every label; none for a VAE]", show_default=False
        ),
    ] = None,
    count: Annotated[int, typer.Option(help="digits per label", min=1, max=MAX_COUNT)] = 16,
    seed: Annotated[int | None, typer.Option(help="same seed, same digits", min=0)] = None,
    temperature: Annotated[float, typer.Option(help="scale of the latent noise, > 0")] = 1.0,
    backend: Annotated[Backend, typer.Option(help="runtime to use")] = Backend.auto,
    out: Annotated[
        str, typer.Option(help="FILE.png (grid, a row per label), FILE.npy, or DIR/ (a PNG each)")
    ] = "digits.png",
    force: Annotated[bool, typer.Option(help="overwrite an existing --out")] = False,
    info: Annotated[bool, typer.Option("--info", help="print the bundle summary and exit")] = False,
) -> None:
    """Generate handwritten digits from a vae-digits bundle (no TensorFlow needed)."""
    from vae_runtime.generator import Generator
    from vae_runtime.images import check_writable, save

    if not info:
        check_writable(out, force)
    generator = Generator.load(bundle, backend=backend.value)
    if info:
        typer.echo(describe(generator))
        return
    labels = None if not label else [parse_label(text) for text in label]
    digits = generator.generate(labels, count=count, seed=seed, temperature=temperature)
    names = None
    if generator.info.conditional:
        ids = generator.label_ids(labels)
        names = [generator.info.labels[i] for i in ids for _ in range(count)]
    columns = count if names else math.ceil(math.sqrt(count))  # a row per label, else a square
    where = save(digits, out, columns=columns, labels=names, force=force)
    what = f"labels {', '.join(dict.fromkeys(names))}" if names else "unconditional"
    typer.echo(f"wrote {len(digits)} digits ({what}) to {where}")


def describe(generator) -> str:
    manifest = generator.info
    training = manifest.training
    validation = training.get("validation", {})
    lines = [
        f"bundle      {generator.bundle}",
        f"kind        {manifest.kind}, latent_dim {manifest.latent_dim}"
        + (f", labels {' '.join(manifest.labels)}" if manifest.conditional else ""),
        f"backend     {generator.backend} ({generator.files['decoder'].path})",
        f"trained     {training.get('epochs', '?')} epochs on {training.get('data_source', '?')}",
    ]
    if validation:
        lines.append(
            "losses      validation total {total_loss:.2f} (reconstruction "
            "{reconstruction_loss:.2f} + KL {kl_loss:.2f}) nats".format(**validation)
        )
    lines.append("files")
    for entry in manifest.files:
        default = " default" if entry.default else ""
        lines.append(
            f"  {entry.path:<24}{entry.format:<7}{entry.precision:<8}{entry.size / 1024:7.0f} KiB"
            f"{entry.speed.get('per_second', 0):>10.0f}/s{default}  {entry.note}".rstrip()
        )
    return "\n".join(lines)


def main() -> None:
    run(app)
