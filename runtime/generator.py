"""`Generator`: digits of chosen labels from a bundle, on onnxruntime or LiteRT, without TensorFlow.

A small facade: the bundle is read and checked by `vae_runtime.bundle` and `vae_runtime.manifest`, the
arguments by `vae_runtime.inputs`, latents are drawn from `vae_runtime.prior`, and the models run in
`vae_runtime.engine`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vae_runtime import inputs, stream
from vae_runtime.backends import Model
from vae_runtime.bundle import (
    DEFAULT,
    EMBEDDED_BUNDLES,
    bundle_path,
    embedded_bundle,
    read_manifest,
    verified_path,
)
from vae_runtime.engine import BULK_ROWS, BulkRoute, Latents, decode_rows, one_hot, open_models, run_model
from vae_runtime.images import grey_levels
from vae_runtime.inputs import MAX_DIGITS, Labels
from vae_runtime.manifest import Manifest, ModelFile
from vae_runtime.prior import Prior

__all__ = [  # Generator, and the names that lived here before moving to .bundle, .engine, .images, .inputs
    "BULK_ROWS",
    "DEFAULT",
    "EMBEDDED_BUNDLES",
    "MAX_DIGITS",
    "Generator",
    "Labels",
    "Latents",
    "embedded_bundle",
    "grey_levels",
]


@dataclass(frozen=True)
class Generator:
    """A loaded bundle: its manifest and one encoder and one decoder on one backend.

    Make one with `Generator.load`. A generator may serve several threads at once: onnxruntime
    sessions run concurrently, a LiteRT interpreter takes one call at a time.

    Attributes:
        manifest: The bundle's checked manifest (kind, latent_dim, labels, files, ...).
        bundle: The bundle's directory.
        backend: The backend of `encoder` and `decoder`: "onnx" or "tflite".
        encoder: Images (and labels) -> {"z_mean", "z_log_var"}; opened on first use.
        decoder: Latents (and labels) -> {"image"}.
        files: The manifest entries in use: "encoder", "decoder", and "bulk" when large requests
            may go to a static-shape TFLite decoder (see `load`).
        workers: How many chunks of a large ONNX request run at once.
        prior: The bundle's fitted latent prior (prior.json), if it has one; `generate` samples it.
        bulk: backend="auto" only: the TFLite decoder for requests of 128 digits or more, used
            where it measures faster than onnxruntime on this machine.

    Examples:
        >>> g = Generator.load()                      # the embedded default, cvae-16d
        >>> g.generate(7, count=16, seed=0).shape     # sixteen sevens, uint8
        (16, 28, 28)
    """

    manifest: Manifest
    bundle: Path
    backend: str
    encoder: Model
    decoder: Model
    files: dict[str, ModelFile]
    workers: int = 1
    prior: Prior | None = None
    bulk: BulkRoute | None = None

    @classmethod
    def load(
        cls,
        bundle: str | Path | None = None,
        backend: str = "auto",
        precision: str | None = None,
        threads: int = 0,
    ) -> Generator:
        """Load a bundle after checking its manifest and the size and sha256 of every file it lists.

        Args:
            bundle: A bundle directory; None for the embedded default ("cvae-16d"); "cvae-16d",
                "cvae-tiny", "cvae" or "vae" for an embedded bundle (when no directory of that name
                is here).
            backend: "onnx", "tflite" or "auto". "auto" runs onnxruntime (fastest for a few digits,
                and the fastest to start), and sends requests of 128 digits or more to the bundle's
                static-shape TFLite decoder if LiteRT is installed and that measures faster on this
                machine (timed once, on the first such request); LiteRT alone when onnxruntime is
                missing.
            precision: None for the bundle's default files (fp32), or the precision of a shipped
                decoder variant, e.g. "int8"; the encoder takes that precision too where the bundle
                has it, else its default.
            threads: 0-1024. For ONNX, how many chunks of a large request run at once; for LiteRT,
                the threads inside one call. 0: one per core.

        Returns:
            The generator. Its encoder, and the bulk TFLite decoder, open on first use.

        Raises:
            BundleError: The bundle is missing, its manifest is malformed, a file is damaged or
                altered, or it has no file for this backend and precision.
            VaeDigitsError: A bad argument, or no installed backend can run the bundle (the
                message says what to pip install).

        Examples:
            >>> g = Generator.load("cvae", backend="onnx")
            >>> g.backend, g.files["decoder"].path
            ('onnx', 'decoder.onnx')
        """
        path = embedded_bundle() if bundle is None else bundle_path(bundle)
        threads = inputs.threads(threads)
        manifest = read_manifest(path)
        for entry in manifest.files:
            verified_path(path, entry)
        models = open_models(path, manifest, backend, precision, threads)
        prior = None
        if manifest.prior is not None:
            prior = Prior.load(path / manifest.prior.path, manifest.latent_dim, manifest.labels)
        return cls(
            manifest,
            path,
            models.backend,
            models.encoder,
            models.decoder,
            models.files,
            models.workers,
            prior,
            models.bulk,
        )

    def generate(
        self,
        labels: Labels = None,
        *,
        count: int = 1,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Sample new digits. Same seed, same digits.

        z is drawn from the portable seeded stream (`vae_runtime.stream`: the same latents for a seed
        in Python, the browser, vae-serve and C): from the bundle's prior (a Gaussian mixture per
        label) when it has one, else from N(0, I); its spread is scaled by `temperature`.

        Args:
            labels: For a CVAE, a label index, a label name, or a sequence (or integer array) of
                them; None for every label. For a plain VAE, None.
            count: Digits per label (for a plain VAE, in all); at most 100,000 digits per call.
            seed: An integer in 0 .. 2^64 - 1, or None for fresh randomness.
            temperature: A number in (0, 10]; None for the bundle's default temperature.

        Returns:
            uint8 images (N, 28, 28), white digits on black (0): each label's `count` digits in
            turn, in the order of `labels`.

        Raises:
            VaeDigitsError: A bad argument: an unknown label, labels for a plain VAE, a count
                that is not a positive integer, a seed that is not a non-negative integer, a
                temperature outside (0, 10], or more than 100,000 digits.

        Examples:
            >>> g = Generator.load()
            >>> g.generate([3, "5"], count=2, seed=0).shape  # 3, 3, 5, 5
            (4, 28, 28)
        """
        latents = self.sample(labels, count=count, seed=seed, temperature=temperature)
        return grey_levels(self._decode(latents))  # decode_batch of one, less its joins

    def sample(
        self,
        labels: Labels = None,
        *,
        count: int = 1,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Latents:
        """The latents `generate` decodes for these arguments (same checks, same draws).

        With `decode_batch`, the two halves of `generate`: a server samples each request's latents,
        then decodes many requests' latents in shared model calls.

        Args:
            labels: As in `generate`.
            count: As in `generate`.
            seed: As in `generate`.
            temperature: As in `generate`.

        Returns:
            The latents, each label's `count` rows in turn.

        Raises:
            VaeDigitsError: A bad argument, as in `generate`.

        Examples:
            >>> g = Generator.load()
            >>> latents = g.sample(7, count=2, seed=0)
            >>> (grey_levels(g.decode_batch([latents])[0]) == g.generate(7, count=2, seed=0)).all()
            np.True_
        """
        count = inputs.positive_int(count, "count")
        scale = inputs.temperature(self.manifest.default_temperature if temperature is None else temperature)
        label_ids = inputs.label_ids(self.manifest, labels, default_all=True)
        total = inputs.total_digits(count, label_ids)
        repeated = label_ids if label_ids is None or count == 1 else np.repeat(label_ids, count)
        z = draw_latents(inputs.seed(seed), repeated, total, self.manifest.latent_dim, self.prior, scale)
        return Latents(z, repeated)

    def latents(self, z: Any, labels: Labels = None) -> Latents:
        """`z` and `labels` checked as `decode` checks them, ready for `decode_batch`.

        Args:
            z: As in `decode`.
            labels: As in `decode`.

        Returns:
            The latents: z as float32 (N, latent_dim), a label index per row for a CVAE.

        Raises:
            VaeDigitsError: As in `decode`.

        Examples:
            >>> Generator.load("cvae").latents([0.0, 1.0], labels=3).label_ids.tolist()
            [3]
        """
        z = inputs.as_matrix(z, "z", self.manifest.latent_dim)
        return Latents(z, inputs.labels_for(self.manifest, labels, len(z)))

    def decode(self, z: Any, labels: Labels = None) -> npt.NDArray[np.float32]:
        """Decode latents into images.

        Args:
            z: Latents, array-like (N, latent_dim), or one latent (latent_dim,); finite numbers.
            labels: For a CVAE, one label for every row or one per row (as in `generate`); for a
                plain VAE, None.

        Returns:
            float32 images (N, 28, 28) in [0, 1].

        Raises:
            VaeDigitsError: z of the wrong shape, not finite, or empty; labels missing (CVAE),
                given (VAE), unknown, or neither 1 nor N of them.

        Examples:
            >>> g = Generator.load("cvae")  # the 2-D CVAE
            >>> g.decode([[0.0, 0.0], [1.0, -1.0]], labels=7).shape
            (2, 28, 28)
        """
        return self.decode_batch([self.latents(z, labels)])[0]

    def decode_batch(self, batch: Sequence[Latents]) -> list[np.ndarray]:
        """Several requests' latents -> each one's float32 images, from shared model calls.

        Each request gets exactly the images it would get alone: a decoder session computes every row
        independently of the rows beside it, so a request's rows may share a call with others'. The
        LiteRT bulk route does not give the same last bits as onnxruntime, so a request that alone
        would take it (BULK_ROWS rows or more) takes it alone.

        Args:
            batch: Latents of several requests, from `sample` or `latents`.

        Returns:
            Each request's float32 images (N, 28, 28) in [0, 1], in the order of `batch`.

        Examples:
            >>> g = Generator.load()
            >>> sevens, threes = g.sample(7, count=2, seed=1), g.sample(3, count=5, seed=2)
            >>> [images.shape for images in g.decode_batch([sevens, threes])]
            [(2, 28, 28), (5, 28, 28)]
        """
        alone = [self.bulk is not None and len(latents) >= BULK_ROWS for latents in batch]
        shared = [latents for latents, own in zip(batch, alone, strict=True) if not own]
        shared_images = iter(self._decode_shared(shared) if shared else [])
        return [
            self._decode(latents) if own else next(shared_images)
            for latents, own in zip(batch, alone, strict=True)
        ]

    def _decode_shared(self, batch: list[Latents]) -> list[np.ndarray]:
        images = decode_rows(
            self.decoder, Latents.join(batch).feeds(self.manifest.num_classes), self.workers, None
        )
        return np.split(images, np.cumsum([len(latents) for latents in batch[:-1]]))

    def _decode(self, latents: Latents) -> npt.NDArray[np.float32]:
        return decode_rows(self.decoder, latents.feeds(self.manifest.num_classes), self.workers, self.bulk)

    def encode(
        self, images: Any, labels: Labels = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Encode images into the parameters of their latent Gaussians.

        Args:
            images: Array-like (N, 28, 28) or (N, 28, 28, 1), or one image (28, 28): uint8 0-255,
                or floats in [0, 1]; white digits on black, as MNIST.
            labels: For a CVAE, the digit each image shows: one label for every row or one per
                row; for a plain VAE, None.

        Returns:
            (z_mean, z_log_var), each float32 (N, latent_dim).

        Raises:
            VaeDigitsError: Images of the wrong shape, empty, or floats outside [0, 1]; labels
                as in `decode`.

        Examples:
            >>> g = Generator.load()
            >>> sevens = g.generate(7, count=3, seed=0)
            >>> z_mean, z_log_var = g.encode(sevens, labels=7)
            >>> z_mean.shape  # the default bundle's latent is 16-D
            (3, 16)
        """
        pixels = inputs.as_images(images)
        feeds = {"image": pixels}
        label_ids = inputs.labels_for(self.manifest, labels, len(pixels))
        if label_ids is not None:
            feeds["label"] = one_hot(label_ids, self.manifest.num_classes)
        outputs = run_model(self.encoder, feeds, self.workers)
        return outputs["z_mean"], outputs["z_log_var"]

    def label_ids(self, labels: Labels) -> np.ndarray | None:
        """The label indices that `generate` would draw for `labels`.

        Args:
            labels: As in `generate`: label indices or names, or None for every label of a CVAE.

        Returns:
            An integer array of label indices; None for a plain VAE.

        Raises:
            VaeDigitsError: An unknown label, or labels for a plain VAE.

        Examples:
            >>> Generator.load().label_ids(["3", 5])
            array([3, 5])
        """
        return inputs.label_ids(self.manifest, labels, default_all=True)


def draw_latents(
    seed: int,
    label_ids: np.ndarray | None,
    total: int,
    latent_dim: int,
    prior: Prior | None,
    scale: float,
) -> np.ndarray:
    """`total` latents from the portable seeded stream (`vae_runtime.stream`, the same in the browser
    and C): N(0, I) normals, then (with a prior) the mixture component of each row's label; the spread
    scaled by `scale` (the temperature)."""
    choosers, normals = stream.draws(seed, total, latent_dim)
    if prior is None:
        return (normals * scale).astype(np.float32)
    return prior.sample(label_ids, normals, choosers, scale)
