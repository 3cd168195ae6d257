"""`vae-explore grid|clusters|labels|interpolate|restyle`: pictures of any bundle's latent space."""

from __future__ import annotations

import argparse
from pathlib import Path

from vae_runtime._cli import (
    Parser,
    add_bundle_option,
    add_mnist_option,
    integer,
    parse_label,
    run,
    subcommands,
)


def grid(
    bundle: Path | None, out: Path, force: bool, n: int, span: float, label: str | None, dims: list[int]
) -> None:
    from vae_runtime.explore import latent_grid

    g = _load(bundle, out, force)
    _write(out, latent_grid(g, n, span, parse_label(label), tuple(dims)))


def clusters(bundle: Path | None, out: Path, force: bool, data: Path | None, limit: int) -> None:
    from vae_runtime.explore import clusters_png
    from vae_runtime.fileio import atomic_write_bytes
    from vae_runtime.mnist import load_mnist_anywhere

    g = _load(bundle, out, force)
    mnist = load_mnist_anywhere(data)
    atomic_write_bytes(out, clusters_png(g, mnist.x_test[:limit], mnist.y_test[:limit]))
    print(f"wrote {out}")


def labels(bundle: Path | None, out: Path, force: bool, columns: int, seed: int) -> None:
    from vae_runtime.explore import label_rows

    g = _load(bundle, out, force)
    _write(out, label_rows(g, columns, seed))


def interpolate(
    bundle: Path | None,
    out: Path,
    force: bool,
    start: str | None,
    end: str | None,
    from_image: Path | None,
    to_image: Path | None,
    label: str | None,
    steps: int,
    spherical: bool,
) -> None:
    from vae_runtime.explore import interpolate as strip

    g = _load(bundle, out, force)
    ends = [
        _latent(g, text, image, label, name)
        for text, image, name in ((start, from_image, "--from"), (end, to_image, "--to"))
    ]
    _write(out, strip(g, *ends, steps=steps, label=parse_label(label), spherical=spherical))


def restyle(
    bundle: Path | None,
    out: Path,
    force: bool,
    image: Path | None,
    index: int | None,
    label: str | None,
    data: Path | None,
) -> None:
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
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]})")


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


def parser() -> Parser:
    cli = Parser(description="Look at what a bundle learned; every command writes one PNG.")
    add = subcommands(cli)

    sub = _command(add, grid, "decode an nxn grid over two latent dimensions into one image")
    sub.add_argument("--n", type=integer(2, 100), default=30, help="digits per side")
    sub.add_argument("--span", type=float, default=2.0, help="the grid covers [-span, span]^2")
    sub.add_argument("--label", help="one label (CVAE) (default: every label, as a mosaic)")
    sub.add_argument(
        "--dims", type=integer(0), nargs=2, default=[0, 1], metavar="D", help="the two latent dimensions"
    )

    sub = _command(add, clusters, "scatter the test digits' z_mean coloured by label (needs matplotlib)")
    add_mnist_option(sub)
    sub.add_argument("--limit", type=integer(1), default=10_000, help="test digits to plot")

    sub = _command(add, labels, "a CVAE's labels as rows; each column keeps one z (one style)")
    sub.add_argument("--columns", type=integer(1, 100), default=8, help="styles (fixed z) per row")
    sub.add_argument("--seed", type=integer(0), default=0, help="same seed, same picture")

    sub = _command(add, interpolate, "decode the path between two latents or two real digits")
    sub.add_argument("--from", dest="start", metavar="Z", help="a latent, e.g. -1.5,0")
    sub.add_argument("--to", dest="end", metavar="Z", help="a latent, e.g. 1.5,0.5")
    sub.add_argument("--from-image", type=Path, metavar="FILE", help="a digit image to start from")
    sub.add_argument("--to-image", type=Path, metavar="FILE", help="a digit image to end at")
    sub.add_argument("--label", help="the label (CVAE)")
    sub.add_argument("--steps", type=integer(2, 200), default=10, help="digits in the strip")
    sub.add_argument("--spherical", action="store_true", help="slerp instead of a straight line")

    sub = _command(add, restyle, "one real digit's handwriting decoded with every label")
    sub.add_argument("--image", type=Path, metavar="FILE", help="a PNG/JPEG of one digit, any size")
    sub.add_argument("--index", type=integer(0), help="or a test digit, by index")
    sub.add_argument("--label", help="the digit the --image shows (CVAE)")
    add_mnist_option(sub)
    return cli


def _command(add, handler, help: str) -> argparse.ArgumentParser:
    sub = add(handler.__name__, handler, help)
    add_bundle_option(sub)
    sub.add_argument("--out", type=Path, default=Path(f"{handler.__name__}.png"), help="the PNG to write")
    sub.add_argument("--force", action="store_true", help="overwrite an existing --out")
    return sub


def main() -> None:
    run(parser())
