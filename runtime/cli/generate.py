"""`vae-generate`: digits of chosen labels from a bundle, as a PNG grid, PNG files or a .npy array."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from vae_runtime.clikit.common import Bundle, Force, Version, integer, main, new_app

if TYPE_CHECKING:
    from vae_runtime.generator import Generator

MAX_COUNT = 10_000
EXAMPLES = """[b]Examples[/b]

  vae-generate --label 7 --count 16 --seed 0 --out sevens.png
  vae-generate --label 3 --label 5 --count 100 --out digits.npy
  vae-generate --bundle bundles/cvae --backend tflite --out each/
  vae-generate --backend tflite --precision int8 --label 4 --out fours.png
  vae-generate --info
"""


class Backend(StrEnum):
    auto = "auto"
    onnx = "onnx"
    tflite = "tflite"


app = new_app("Generate handwritten digits from a vae-digits bundle (no TensorFlow needed).")


@app.command(epilog=EXAMPLES)
def generate(
    bundle: Bundle = None,
    label: Annotated[
        list[str] | None,
        typer.Option(help="Label (int or name), repeatable. Default: every label; none for a VAE."),
    ] = None,
    count: Annotated[
        int, typer.Option(parser=integer(1, MAX_COUNT), help=f"Digits per label, 1-{MAX_COUNT:,}.")
    ] = 16,
    seed: Annotated[
        int | None, typer.Option(parser=integer(0), help="Same seed, same digits (>= 0).", show_default=False)
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="Scale of the latent noise, > 0 (default: the bundle's).", show_default=False),
    ] = None,
    backend: Annotated[Backend, typer.Option(help="Runtime to use.")] = Backend.auto,
    precision: Annotated[
        str | None,
        typer.Option(
            help="A shipped variant, e.g. int8 (default: the bundle's fp32 files).", show_default=False
        ),
    ] = None,
    out: Annotated[
        str, typer.Option(help="FILE.png (a grid, a row per label), FILE.npy, or DIR/ (a PNG each).")
    ] = "digits.png",
    force: Force = False,
    info: Annotated[bool, typer.Option("--info", help="Print the bundle summary and exit.")] = False,
    version: Version = False,
) -> None:
    """Generate digits of chosen labels and write them as a PNG grid, PNG files or a .npy array."""
    from vae_runtime.generator import Generator
    from vae_runtime.images import check_writable, grid_columns, save
    from vae_runtime.inputs import parse_label

    if not info:
        check_writable(out, force)
    generator = Generator.load(bundle, backend=backend.value, precision=precision)
    if info:
        print(describe(generator))
        return
    labels = None if not label else [parse_label(text) for text in label]
    digits = generator.generate(labels, count=count, seed=seed, temperature=temperature)
    names = None
    ids = generator.label_ids(labels)  # None for a plain VAE
    if ids is not None:
        names = [generator.manifest.labels[i] for i in ids for _ in range(count)]
    columns = grid_columns(count, generator.manifest.conditional)
    where = save(digits, out, columns=columns, labels=names, force=force)
    what = f"labels {', '.join(dict.fromkeys(names))}" if names else "unconditional"
    print(f"wrote {len(digits)} digits ({what}) to {where}")


def describe(generator: Generator) -> str:
    from vae_runtime.engine import BULK_ROWS

    manifest, files = generator.manifest, generator.files
    training = manifest.training
    validation = training.get("validation", {})
    source = training.get("data_source") or {}
    data = source.get("name", "?") if isinstance(source, dict) else source
    lines = [
        f"bundle      {generator.bundle}",
        f"kind        {manifest.kind}, latent_dim {manifest.latent_dim}"
        + (f", labels {' '.join(manifest.labels)}" if manifest.conditional else ""),
        f"backend     {generator.backend} ({generator.files['decoder'].path})"
        + (
            f"; from {BULK_ROWS} digits tflite ({files['bulk'].path}) if faster here"
            if "bulk" in files
            else ""
        ),
        f"sampling    {'per-label Gaussian mixture (prior.json)' if manifest.prior else 'N(0, I)'}, "
        f"temperature {manifest.default_temperature:g}",
        f"trained     {training.get('epochs', '?')} epochs on {data}",
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


def run() -> None:
    main(app)
