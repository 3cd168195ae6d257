"""`vae-explore grid|clusters|labels|interpolate|restyle`: pictures of any bundle's latent space."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vae_runtime._cli import BundleOption, MnistOption, parse_label, run

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Look at what a bundle learned; every command writes one PNG.",
)

Out = Annotated[Path, typer.Option(help="the PNG to write")]
Force = Annotated[bool, typer.Option(help="overwrite an existing --out")]
Label = Annotated[str | None, typer.Option(help="a label (CVAE)", show_default=False)]
Seed = Annotated[int, typer.Option(help="same seed, same picture", min=0)]


@app.command()
def grid(
    bundle: BundleOption = None,
    out: Out = Path("grid.png"),
    force: Force = False,
    n: Annotated[int, typer.Option(help="digits per side", min=2, max=100)] = 30,
    span: Annotated[float, typer.Option(help="the grid covers [-span, span]^2")] = 2.0,
    label: Annotated[
        str | None,
        typer.Option(help="one label (CVAE) [default: every label, as a mosaic]", show_default=False),
    ] = None,
    dims: Annotated[tuple[int, int], typer.Option(help="the two latent dimensions spanned")] = (0, 1),
) -> None:
    """Decode an nxn grid over two latent dimensions into one image."""
    from vae_runtime.explore import latent_grid

    g = _load(bundle, out, force)
    _write(out, latent_grid(g, n, span, parse_label(label), dims))


@app.command()
def clusters(
    bundle: BundleOption = None,
    out: Out = Path("clusters.png"),
    force: Force = False,
    data: MnistOption = None,
    limit: Annotated[int, typer.Option(help="test digits to plot", min=1)] = 10_000,
) -> None:
    """Scatter the test digits' z_mean coloured by label (needs matplotlib)."""
    from vae_runtime.explore import clusters_png
    from vae_runtime.fileio import atomic_write_bytes
    from vae_runtime.mnist import load_mnist_anywhere

    g = _load(bundle, out, force)
    mnist = load_mnist_anywhere(data)
    atomic_write_bytes(out, clusters_png(g, mnist.x_test[:limit], mnist.y_test[:limit]))
    typer.echo(f"wrote {out}")


@app.command()
def labels(
    bundle: BundleOption = None,
    out: Out = Path("labels.png"),
    force: Force = False,
    columns: Annotated[int, typer.Option(help="styles (fixed z) per row", min=1, max=100)] = 8,
    seed: Seed = 0,
) -> None:
    """A CVAE's labels as rows; each column keeps one z, so it shows one style across digits."""
    from vae_runtime.explore import label_rows

    g = _load(bundle, out, force)
    _write(out, label_rows(g, columns, seed))


@app.command()
def interpolate(
    bundle: BundleOption = None,
    out: Out = Path("interpolate.png"),
    force: Force = False,
    start: Annotated[
        str | None, typer.Option("--from", help="a latent, e.g. -1.5,0", show_default=False)
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="a latent, e.g. 1.5,0.5", show_default=False)
    ] = None,
    from_image: Annotated[Path | None, typer.Option(help="a digit image to start from")] = None,
    to_image: Annotated[Path | None, typer.Option(help="a digit image to end at")] = None,
    label: Label = None,
    steps: Annotated[int, typer.Option(help="digits in the strip", min=2, max=200)] = 10,
    spherical: Annotated[bool, typer.Option(help="slerp instead of a straight line")] = False,
) -> None:
    """Decode the path between two latents, or between two real digits (encoded first)."""
    from vae_runtime.explore import interpolate as strip

    g = _load(bundle, out, force)
    ends = [
        _latent(g, text, image, label, name)
        for text, image, name in ((start, from_image, "--from"), (end, to_image, "--to"))
    ]
    _write(out, strip(g, *ends, steps=steps, label=parse_label(label), spherical=spherical))


@app.command()
def restyle(
    bundle: BundleOption = None,
    out: Out = Path("restyle.png"),
    force: Force = False,
    image: Annotated[Path | None, typer.Option(help="a PNG/JPEG of one digit, any size")] = None,
    index: Annotated[int | None, typer.Option(help="or a test digit, by index", min=0)] = None,
    label: Label = None,
    data: MnistOption = None,
) -> None:
    """Encode a real digit with its label and decode it with every label: one handwriting, ten digits."""
    from vae_runtime.errors import VaeDigitsError
    from vae_runtime.explore import load_digit
    from vae_runtime.explore import restyle as strip
    from vae_runtime.mnist import load_mnist_anywhere

    if (image is None) == (index is None):
        raise VaeDigitsError("give either --image FILE or --index N")
    g = _load(bundle, out, force)
    if image is not None:
        if label is None:
            raise VaeDigitsError("--image needs --label: the digit the image shows")
        digit, digit_label = load_digit(image), parse_label(label)
    else:
        mnist = load_mnist_anywhere(data)
        if index >= len(mnist.x_test):
            raise VaeDigitsError(f"--index {index} is past the {len(mnist.x_test)} test digits")
        digit, digit_label = mnist.x_test[index], int(mnist.y_test[index])
    _write(out, strip(g, digit, digit_label))


def _load(bundle: Path | None, out: Path, force: bool):
    from vae_runtime.generator import Generator
    from vae_runtime.images import check_writable

    if out.suffix.lower() != ".png":
        from vae_runtime.errors import VaeDigitsError

        raise VaeDigitsError(f"--out {out} must be a .png file")
    check_writable(str(out), force)
    return Generator.load(bundle)


def _write(out: Path, image) -> None:
    from vae_runtime.images import save_png

    save_png(image, out)
    typer.echo(f"wrote {out} ({image.shape[1]}x{image.shape[0]})")


def _latent(g, text: str | None, image: Path | None, label: str | None, flag: str):
    import numpy as np

    from vae_runtime.errors import VaeDigitsError
    from vae_runtime.explore import load_digit

    if (text is None) == (image is None):
        raise VaeDigitsError(f"give either {flag} Z or {flag}-image FILE")
    if image is not None:
        labels = None if not g.info.conditional else [parse_label(label)] if label is not None else None
        if g.info.conditional and labels is None:
            raise VaeDigitsError("encoding an image with a CVAE needs --label")
        return g.encode(load_digit(image)[None], labels)[0][0]
    try:
        return np.array([float(v) for v in text.split(",")], np.float32)
    except ValueError:
        raise VaeDigitsError(f"{flag} {text!r} is not comma-separated numbers") from None


def main() -> None:
    run(app)
