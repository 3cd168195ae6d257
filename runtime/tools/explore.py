"""Pictures of what a bundle learned: latent grids, label rows, interpolations, restyling, clusters.

Every function takes a loaded `Generator` and returns a uint8 image (0 = black), so any exported
bundle can be inspected without TensorFlow.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

from vae_runtime.errors import VaeDigitsError
from vae_runtime.generator import Generator
from vae_runtime.images import grey_levels, grid

MAX_GRID = 100
# Limits on an image a user hands in, checked before it is decoded (a tiny PNG can claim gigapixels).


def latent_grid(
    g: Generator,
    n: int = 30,
    span: float = 2.0,
    label: int | str | None = None,
    dims: tuple[int, int] = (0, 1),
    progress: Callable[[], None] | None = None,
) -> np.ndarray:
    """Decode an nxn grid over [-span, span]^2 of two latent dimensions (the others at 0).

    The horizontal axis is dims[0] rising to the right, the vertical one dims[1] rising upwards.
    For a CVAE pass a label; `label=None` puts the grids of every label side by side.
    `progress` is called after each panel.
    """
    if not 2 <= n <= MAX_GRID:
        raise VaeDigitsError(f"grid size must be 2-{MAX_GRID}, not {n}")
    if not np.isfinite(span) or span <= 0:
        raise VaeDigitsError(f"span must be a finite number > 0, not {span}")
    latent_dim = g.manifest.latent_dim
    if len(set(dims)) != 2 or not all(0 <= d < latent_dim for d in dims):
        raise VaeDigitsError(f"dims must be two different dimensions in 0-{latent_dim - 1}, not {dims}")
    axis = np.linspace(-span, span, n, dtype=np.float32)
    z = np.zeros((n * n, latent_dim), np.float32)
    z[:, dims[0]] = np.tile(axis, n)
    z[:, dims[1]] = np.repeat(axis[::-1], n)
    label_ids = g.label_ids(label) if g.manifest.conditional else None
    panels: list[int | None] = [None] if label_ids is None else [int(i) for i in label_ids]
    tiles = []
    for panel_label in panels:
        tiles.append(grid(_digits(g, z, panel_label), columns=n, pad=0))
        if progress is not None:
            progress()
    return tiles[0] if len(tiles) == 1 else grid(np.stack(tiles), columns=5, pad=6)


def label_rows(g: Generator, columns: int = 8, seed: int | None = 0, temperature: float = 1.0) -> np.ndarray:
    """A CVAE's labels as rows, one fixed z per column: a column is one style across all digits."""
    _need_cvae(g, "label rows")
    z = np.random.default_rng(seed).standard_normal((columns, g.manifest.latent_dim), dtype=np.float32)
    rows = [_digits(g, z * temperature, label) for label in range(g.manifest.num_classes)]
    return grid(np.concatenate(rows), columns=columns)


def interpolate(
    g: Generator,
    start: np.ndarray,
    end: np.ndarray,
    steps: int = 10,
    label: int | str | None = None,
    spherical: bool = False,
) -> np.ndarray:
    """Decode the straight (or spherical) path from latent `start` to `end` as one strip."""
    if not 2 <= steps <= 200:
        raise VaeDigitsError(f"steps must be 2-200, not {steps}")
    start, end = (np.asarray(v, np.float32).reshape(-1) for v in (start, end))
    for name, value in (("start", start), ("end", end)):
        if value.shape != (g.manifest.latent_dim,) or not np.isfinite(value).all():
            raise VaeDigitsError(f"{name} must be {g.manifest.latent_dim} finite numbers")
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    path = slerp(start, end, t) if spherical else (1 - t) * start + t * end
    label_id = _one_label(g, label)
    return grid(_digits(g, path, label_id), columns=steps)


def slerp(start: np.ndarray, end: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between two vectors; linear where they are (anti)parallel."""
    norms = np.linalg.norm(start) * np.linalg.norm(end)
    cosine = np.clip(np.dot(start, end) / norms, -1.0, 1.0) if norms > 0 else 1.0
    omega = np.arccos(cosine)
    if np.sin(omega) < 1e-6:
        line: np.ndarray = (1 - t) * start + t * end
        return line
    arc: np.ndarray = (np.sin((1 - t) * omega) * start + np.sin(t * omega) * end) / np.sin(omega)
    return arc


def restyle(g: Generator, image: np.ndarray, label: int | str) -> np.ndarray:
    """Encode one real digit with its label, decode its z with every label: one strip.

    The first tile is the digit as the model saw it.
    """
    _need_cvae(g, "restyle")
    label_id = _one_label(g, label)
    z_mean, _ = g.encode(image[None], label_id)
    decoded = g.decode(np.repeat(z_mean, g.manifest.num_classes, axis=0), list(range(g.manifest.num_classes)))
    tiles = np.concatenate([image[None], grey_levels(decoded)])
    return grid(tiles, columns=len(tiles))


def project_2d(z: np.ndarray) -> tuple[np.ndarray, str, tuple[str, str]]:
    """z (N, d) -> (N, 2): the latent itself when d = 2, else its first two principal components.

    Also returns a description of the projection and the two axis names.
    """
    if z.shape[1] == 2:
        return z, "z[0] vs z[1]", ("z[0]", "z[1]")
    centred = z - z.mean(axis=0)
    _, singular, components = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    explained = float((singular[:2] ** 2).sum() / (singular**2).sum())
    what = f"PCA of the {z.shape[1]}-D z_mean to 2-D, {explained:.0%} of the variance"
    return (centred @ components[:2].T).astype(np.float32), what, ("PC 1", "PC 2")


def clusters_png(g: Generator, images: np.ndarray, labels: np.ndarray) -> tuple[bytes, str]:
    """Scatter the test digits' z_mean coloured by their label, with a legend: (PNG bytes, projection).

    A latent of more than two dimensions is projected to 2-D with PCA, and the title says so.
    """
    try:
        import matplotlib
    except ImportError:
        raise VaeDigitsError('clusters needs matplotlib: pip install "vae-digits[explore]"') from None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    z_mean, _ = g.encode(images, labels if g.manifest.conditional else None)
    points, projection, axis_names = project_2d(z_mean)
    figure, axis = plt.subplots(figsize=(8, 7), layout="constrained")
    colours = plt.get_cmap("tab10")
    for digit in range(10):
        chosen = labels == digit
        axis.scatter(
            points[chosen, 0],
            points[chosen, 1],
            s=3,
            alpha=0.6,
            color=colours(digit),
            label=str(digit),
            rasterized=True,
        )
    axis.set(
        xlabel=axis_names[0],
        ylabel=axis_names[1],
        title=f"{g.manifest.kind.upper()} z_mean of {len(images):,} test digits ({projection})",
    )
    axis.legend(title="digit", markerscale=4, loc="best", framealpha=0.9)
    axis.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue(), projection


def _digits(g: Generator, z: np.ndarray, label: int | None) -> np.ndarray:
    labels = None if label is None else [label]
    return grey_levels(g.decode(z, labels))


def _one_label(g: Generator, label: int | str | None) -> int | None:
    if not g.manifest.conditional:
        if label is not None:
            raise VaeDigitsError("this bundle is a plain VAE: it takes no labels")
        return None
    if label is None:
        raise VaeDigitsError("this bundle is a CVAE: give --label")
    ids = g.label_ids(label)
    if ids is None or len(ids) != 1:  # None: never for a CVAE
        raise VaeDigitsError("give exactly one label")
    return int(ids[0])


def _need_cvae(g: Generator, what: str) -> None:
    if not g.manifest.conditional:
        raise VaeDigitsError(f"{what} needs a CVAE bundle; this one is a plain VAE")
