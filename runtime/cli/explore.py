"""`vae-explore grid|clusters|labels|interpolate|restyle`: pictures of any bundle's latent space."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vae_runtime.clikit.common import Bundle, Force, Version, data_option, integer, main, new_app, number
from vae_runtime.errors import VaeDigitsError

if TYPE_CHECKING:
    import numpy as np

    from vae_runtime.generator import Generator

app = new_app("Look at what a bundle learned; every command writes one PNG.", commands=True)
Data = Annotated[Path | None, data_option()]
Label = Annotated[str | None, typer.Option(help="The label (CVAE).", show_default=False)]
Out = Annotated[Path, typer.Option(help="The PNG to write.")]


EXAMPLES = """[b]Examples[/b]

  vae-explore grid --label 7 --out sevens.png
  vae-explore clusters --data mnist.npz --out clusters.png
  vae-explore labels --columns 8 --out labels.png
  vae-explore interpolate --from -1.5,0 --to 1.5,0.5 --label 3 --out path.png
  vae-explore restyle --image my4.jpg --label 4 --out restyle.png
"""


@app.callback(epilog=EXAMPLES)
def explore(version: Version = False) -> None:
    """Look at what a bundle learned: latent grids, clusters, label rows, interpolations, restyling.

    Every command writes one PNG; [b]vae-explore COMMAND --help[/b] for its options.
    """


@app.command(epilog="[b]Example[/b]  vae-explore grid --label 7 --n 20 --out sevens.png")
def grid(
    bundle: Bundle = None,
    out: Out = Path("grid.png"),
    force: Force = False,
    n: Annotated[int, typer.Option(parser=integer(2, 100), help="Digits per side, 2-100.")] = 30,
    span: Annotated[
        float, typer.Option(parser=number(1e-6, 1e3), help="The grid covers [-span, span]^2.")
    ] = 2.0,
    label: Annotated[
        str | None, typer.Option(help="One label (CVAE). Default: every label, as a mosaic.")
    ] = None,
    dims: Annotated[
        tuple[int, int], typer.Option(metavar="D D", help="The two latent dimensions to move.")
    ] = (0, 1),
) -> None:
    """Decode an n x n grid over two latent dimensions (the others at 0) into one image."""
    from vae_runtime.clikit.progress import Progress
    from vae_runtime.inputs import parse_label
    from vae_runtime.tools.explore import latent_grid

    g = _load(bundle, out, force)
    panels = 1 if label is not None or not g.manifest.conditional else g.manifest.num_classes
    with Progress(panels, "decoding") as bar:
        image = latent_grid(g, n, span, parse_label(label), dims, progress=bar.advance)
    _write(out, image)


@app.command(epilog="[b]Example[/b]  vae-explore clusters --data mnist.npz --out clusters.png")
def clusters(
    bundle: Bundle = None,
    out: Out = Path("clusters.png"),
    force: Force = False,
    data: Data = None,
    limit: Annotated[int, typer.Option(parser=integer(1, 100_000), help="Test digits to plot.")] = 10_000,
) -> None:
    """Scatter the test digits' z_mean coloured by label; PCA to 2-D for a larger latent (matplotlib)."""
    from vae_runtime.fileio import atomic_write_bytes
    from vae_runtime.mnist import load_mnist_anywhere
    from vae_runtime.tools.explore import clusters_png

    g = _load(bundle, out, force)
    mnist = load_mnist_anywhere(data)
    png, projection = clusters_png(g, mnist.x_test[:limit], mnist.y_test[:limit])
    atomic_write_bytes(out, png)
    print(f"wrote {out} ({projection})")


@app.command(epilog="[b]Example[/b]  vae-explore labels --columns 8 --seed 0 --out labels.png")
def labels(
    bundle: Bundle = None,
    out: Out = Path("labels.png"),
    force: Force = False,
    columns: Annotated[int, typer.Option(parser=integer(1, 100), help="Styles (fixed z) per row.")] = 8,
    seed: Annotated[int, typer.Option(parser=integer(0), help="Same seed, same picture.")] = 0,
) -> None:
    """A CVAE's labels as rows; each column keeps one z (one handwriting style)."""
    from vae_runtime.tools.explore import label_rows

    g = _load(bundle, out, force)
    _write(out, label_rows(g, columns, seed, g.manifest.default_temperature))


@app.command(
    epilog="[b]Examples[/b]\n\n"
    "  vae-explore interpolate --from -1.5,0 --to 1.5,0.5 --label 3 --out path.png\n\n"
    "  vae-explore interpolate --from-image a.png --to-image b.png --label 3 --out path.png"
)
def interpolate(
    bundle: Bundle = None,
    out: Out = Path("interpolate.png"),
    force: Force = False,
    start: Annotated[
        str | None, typer.Option("--from", metavar="Z", help="A latent, e.g. -1.5,0", show_default=False)
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", metavar="Z", help="A latent, e.g. 1.5,0.5", show_default=False)
    ] = None,
    from_image: Annotated[
        Path | None, typer.Option(metavar="FILE", help="A digit image to start from.", show_default=False)
    ] = None,
    to_image: Annotated[
        Path | None, typer.Option(metavar="FILE", help="A digit image to end at.", show_default=False)
    ] = None,
    label: Label = None,
    steps: Annotated[int, typer.Option(parser=integer(2, 200), help="Digits in the strip, 2-200.")] = 10,
    spherical: Annotated[bool, typer.Option("--spherical", help="Slerp instead of a straight line.")] = False,
) -> None:
    """Decode the path between two latents or two real digits."""
    from vae_runtime.inputs import parse_label
    from vae_runtime.tools.explore import interpolate as strip

    g = _load(bundle, out, force)
    start_z, end_z = (
        _latent(g, text, image, label, name)
        for text, image, name in ((start, from_image, "--from"), (end, to_image, "--to"))
    )
    _write(out, strip(g, start_z, end_z, steps=steps, label=parse_label(label), spherical=spherical))


@app.command(
    epilog="[b]Examples[/b]\n\n  vae-explore restyle --image my4.jpg --label 4 --out restyle.png\n\n"
    "  vae-explore restyle --index 0 --data mnist.npz --out restyle.png"
)
def restyle(
    bundle: Bundle = None,
    out: Out = Path("restyle.png"),
    force: Force = False,
    image: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="A PNG/JPEG of one digit, any size.", show_default=False),
    ] = None,
    index: Annotated[
        int | None, typer.Option(parser=integer(0), help="Or a test digit, by index.", show_default=False)
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="The digit the --image shows (CVAE).", show_default=False)
    ] = None,
    data: Data = None,
) -> None:
    """One real digit's handwriting decoded with every label."""
    from vae_runtime.images import load_digit
    from vae_runtime.inputs import parse_label
    from vae_runtime.mnist import load_mnist_anywhere
    from vae_runtime.tools.explore import restyle as strip

    if (image is None) == (index is None):
        raise VaeDigitsError("give either --image FILE or --index N")
    g = _load(bundle, out, force)
    if image is not None:
        if label is None:
            raise VaeDigitsError("--image needs --label: the digit the image shows")
        digit, digit_label = load_digit(image), parse_label(label)
    else:
        assert index is not None  # exactly one of --image and --index, checked above
        mnist = load_mnist_anywhere(data)
        if index >= len(mnist.x_test):
            raise VaeDigitsError(f"--index {index} is past the {len(mnist.x_test)} test digits")
        digit, digit_label = mnist.x_test[index], int(mnist.y_test[index])
    _write(out, strip(g, digit, digit_label))


def _load(bundle: Path | None, out: Path, force: bool) -> Generator:
    from vae_runtime.generator import Generator
    from vae_runtime.images import check_writable

    if out.suffix.lower() != ".png":
        raise VaeDigitsError(f"--out {out} must be a .png file")
    check_writable(str(out), force)
    return Generator.load(bundle)


def _write(out: Path, image: np.ndarray) -> None:
    from vae_runtime.images import save_png

    save_png(image, out)
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]})")


def _latent(g: Generator, text: str | None, image: Path | None, label: str | None, flag: str) -> np.ndarray:
    import numpy as np

    from vae_runtime.images import load_digit
    from vae_runtime.inputs import parse_label

    if image is not None and text is None:
        if g.manifest.conditional and label is None:
            raise VaeDigitsError("encoding an image with a CVAE needs --label")
        labels = [parse_label(label)] if g.manifest.conditional and label is not None else None
        z_mean: np.ndarray = g.encode(load_digit(image)[None], labels)[0][0]
        return z_mean
    if text is None or image is not None:
        raise VaeDigitsError(f"give either {flag} Z or {flag}-image FILE")
    try:
        return np.array([float(v) for v in text.split(",")], np.float32)
    except ValueError:
        raise VaeDigitsError(f"{flag} {text!r} is not comma-separated numbers") from None


def run() -> None:
    main(app)
