"""`vae-generate`: digits of chosen labels from a bundle, as a PNG grid, PNG files or a .npy array."""

from __future__ import annotations

import math
from pathlib import Path

from vae_runtime._cli import Parser, add_bundle_option, integer, parse_label, run

MAX_COUNT = 10_000


def generate(
    bundle: Path | None,
    label: list[str] | None,
    count: int,
    seed: int | None,
    temperature: float,
    backend: str,
    out: str,
    force: bool,
    info: bool,
) -> None:
    from vae_runtime.generator import Generator
    from vae_runtime.images import check_writable, save

    if not info:
        check_writable(out, force)
    generator = Generator.load(bundle, backend=backend)
    if info:
        print(describe(generator))
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
    print(f"wrote {len(digits)} digits ({what}) to {where}")


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


def parser() -> Parser:
    cli = Parser(description="Generate handwritten digits from a vae-digits bundle (no TensorFlow needed).")
    add_bundle_option(cli)
    cli.add_argument(
        "--label",
        action="append",
        help="label (int or name), repeatable (default: every label; none for a VAE)",
    )
    cli.add_argument("--count", type=integer(1, MAX_COUNT), default=16, help="digits per label")
    cli.add_argument("--seed", type=integer(0), help="same seed, same digits")
    cli.add_argument("--temperature", type=float, default=1.0, help="scale of the latent noise, > 0")
    cli.add_argument("--backend", choices=("auto", "onnx", "tflite"), default="auto", help="runtime to use")
    cli.add_argument(
        "--out",
        default="digits.png",
        help="FILE.png (grid, a row per label), FILE.npy, or DIR/ (a PNG each)",
    )
    cli.add_argument("--force", action="store_true", help="overwrite an existing --out")
    cli.add_argument("--info", action="store_true", help="print the bundle summary and exit")
    cli.set_defaults(handler=generate)
    return cli


def main() -> None:
    run(parser())
