"""A bundle's fitted latent prior (prior.json): one Gaussian mixture per label over the encoder's latents.

Sampling z from where the encoder actually put each label's training digits, rather than from N(0, I),
keeps the label and the variety together (ex-post density estimation: Ghosh et al. 2020, "From
Variational to Deterministic Autoencoders"). The file is untrusted input like the rest of a bundle.

Format: {"format": "vae-digits-prior", "format_version": 1, "kind": "gmm", "latent_dim": d,
"labels": [...] ([] for a plain VAE), "mixtures": [one per label, in label order (one for a VAE):
{"weights": [K], "means": [K x d], "cholesky": [K x d x d] lower-triangular factors of the covariances}],
"fitted_on": {...}}.

Sampling (the portable stream of vae_runtime.stream gives each row its normals eps and its uniform u;
the browser and C follow the same rule): row i takes component k = #{j : cumsum(weights)[j] <= u[i]}
(capped at K - 1), so a zero-weight component is never chosen, and
z = means[k] + temperature * cholesky[k] @ eps[i], in float64, then rounded to float32.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_runtime.errors import BundleError
from vae_runtime.spec import SPEC

_SPEC = SPEC["prior"]  # bundle_spec.json: the limits the browser library checks too
FORMAT: str = _SPEC["format"]
VERSION: int = _SPEC["format_version"]
KIND: str = _SPEC["kind"]
MAX_PRIOR_BYTES: int = _SPEC["max_bytes"]
MAX_COMPONENTS: int = _SPEC["max_components"]
MAX_NUMBERS: int = _SPEC["max_numbers"]  # labels x components x latent_dim^2, checked before arrays are built
WEIGHTS_TOLERANCE: float = _SPEC["weights_tolerance"]  # how far from 1 the weights of a mixture may sum
Bad = Callable[[str], BundleError]  # names the file in a BundleError's message


@dataclass(frozen=True)
class Prior:
    """weights (labels, K), means (labels, K, d), cholesky (labels, K, d, d)."""

    weights: np.ndarray
    means: np.ndarray
    cholesky: np.ndarray

    @classmethod
    def load(cls, path: Path, latent_dim: int, labels: tuple[str, ...]) -> Prior:
        """Read and validate prior.json for a bundle of `latent_dim` and `labels` (() for a VAE)."""
        path = Path(path)
        if path.stat().st_size > MAX_PRIOR_BYTES:
            raise BundleError(f"{path.name} is larger than {MAX_PRIOR_BYTES} bytes")
        try:
            data = json.loads(path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise BundleError(f"{path.name} is not readable JSON ({error})") from None
        return cls.from_dict(data, latent_dim, labels, path.name)

    @classmethod
    def from_dict(cls, data: object, latent_dim: int, labels: tuple[str, ...], name: str = "prior") -> Prior:
        def bad(what: str) -> BundleError:
            return BundleError(f"{name}: {what}")

        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or data.get("format_version") != VERSION
        ):
            raise bad(f"not a {FORMAT} version {VERSION} file")
        if data.get("kind") != KIND or data.get("latent_dim") != latent_dim:
            raise bad(f"must be a kind '{KIND}' prior of latent_dim {latent_dim}, as the bundle")
        if data.get("labels") != list(labels):
            raise bad("its labels differ from the bundle's")
        mixtures = data.get("mixtures")
        if not isinstance(mixtures, list) or len(mixtures) != max(len(labels), 1):
            raise bad(f"must hold {max(len(labels), 1)} mixtures, one per label")
        sizes = {
            len(m["weights"]) if isinstance(m, dict) and isinstance(m.get("weights"), list) else 0
            for m in mixtures
        }
        components = sizes.pop()
        if sizes or not 0 < components <= MAX_COMPONENTS:
            raise bad(f"every mixture must have the same number of components, 1-{MAX_COMPONENTS}")
        if len(mixtures) * components * latent_dim**2 > MAX_NUMBERS:
            raise bad("is too large")
        parts = [_mixture(m, components, latent_dim, bad) for m in mixtures]
        return cls(*(np.stack([part[i] for part in parts]) for i in range(3)))

    def sample(
        self, label_ids: np.ndarray | None, eps: np.ndarray, u: np.ndarray, temperature: float
    ) -> np.ndarray:
        """z for each row: component k of its label's mixture with probability weights[k] (chosen by
        the uniform draw `u`), then means[k] + temperature * cholesky[k] @ eps."""
        rows = np.zeros(len(eps), np.int64) if label_ids is None else np.asarray(label_ids)
        passed = np.add.reduce(self._cumulative_weights[rows] <= u[:, None], axis=1)  # the ufunc: no wrapper
        chosen = np.minimum(passed, self.weights.shape[1] - 1)
        scale = self.cholesky[rows, chosen]
        z: np.ndarray = self.means[rows, chosen] + temperature * np.einsum("nij,nj->ni", scale, eps)
        return z.astype(np.float32)

    @functools.cached_property
    def _cumulative_weights(self) -> np.ndarray:
        return np.cumsum(self.weights, axis=1)


def _mixture(mixture: dict[str, Any], components: int, latent_dim: int, bad: Bad) -> tuple[np.ndarray, ...]:
    weights = _array(mixture.get("weights"), (components,), bad)
    means = _array(mixture.get("means"), (components, latent_dim), bad)
    cholesky = _array(mixture.get("cholesky"), (components, latent_dim, latent_dim), bad)
    if (weights < 0).any() or not math.isclose(weights.sum(), 1.0, abs_tol=WEIGHTS_TOLERANCE):
        raise bad("mixture weights must be >= 0 and sum to 1")
    if np.triu(cholesky, k=1).any() or not (np.diagonal(cholesky, axis1=1, axis2=2) > 0).all():
        raise bad("cholesky factors must be lower-triangular with a positive diagonal")
    return weights, means, cholesky


def _array(value: object, shape: tuple[int, ...], bad: Bad) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer beyond float64
        raise bad(f"expected numbers of shape {list(shape)}") from None
    if array.shape != shape or not np.isfinite(array).all():
        raise bad(f"expected finite numbers of shape {list(shape)}")
    return array
