"""Fitting a bundle's latent prior: per label, a Gaussian mixture (full covariances, EM) over the
encoder's z_mean of the training digits. Written as prior.json; `Generator.generate` samples from it.

Example:
    >>> prior = fit_prior(z_train, y_train, num_classes=10, components=10)
    >>> Path("prior.json").write_text(json.dumps(prior_json(prior, labels, fitted_on={...})))
"""

from __future__ import annotations

import numpy as np

from vae_runtime.errors import VaeDigitsError
from vae_runtime.prior import FORMAT, Prior

ITERATIONS = 200
TOLERANCE = 1e-6  # stop when the mean log-likelihood gains less
RIDGE = 1e-4  # added to every covariance's diagonal: keeps each component well conditioned


def fit_prior(
    z: np.ndarray, labels: np.ndarray | None, num_classes: int, components: int, seed: int = 0
) -> Prior:
    """One mixture of `components` Gaussians per label (one in all for a plain VAE, labels None)."""
    groups = [z] if labels is None else [z[labels == label] for label in range(num_classes)]
    needed = max(components, 2)  # k-means starts from distinct digits; a covariance needs two
    for label, group in enumerate(groups):
        if len(group) < needed:
            which = "the data" if labels is None else f"label {label}"
            raise VaeDigitsError(
                f"{which} has {len(group)} training digits; a {components}-component prior needs {needed}"
            )
    fitted = [fit_gmm(group, components, seed) for group in groups]
    return Prior(*(np.stack([mixture[i] for mixture in fitted]) for i in range(3)))


def fit_gmm(x: np.ndarray, components: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM for a full-covariance Gaussian mixture, started from k-means: (weights, means, cholesky).
    x needs at least `components` rows and two."""
    x = np.asarray(x, np.float64)
    count, dim = x.shape
    means = _kmeans(x, components, np.random.default_rng(seed))
    cholesky = np.repeat(
        np.linalg.cholesky(np.cov(x, rowvar=False) + RIDGE * np.eye(dim))[None], components, 0
    )
    weights = np.full(components, 1 / components)
    previous = -np.inf
    for _ in range(ITERATIONS):
        log_joint = _log_gaussians(x, means, cholesky) + np.log(weights)
        top = log_joint.max(axis=1, keepdims=True)
        log_total = top[:, 0] + np.log(np.exp(log_joint - top).sum(axis=1))
        responsibility = np.exp(log_joint - log_total[:, None])
        mass = responsibility.sum(axis=0) + 1e-10
        weights, means = mass / count, (responsibility.T @ x) / mass[:, None]
        centred = x[None] - means[:, None]  # (K, n, d)
        weighted = centred * responsibility.T[:, :, None]
        covariance = weighted.transpose(0, 2, 1) @ centred / mass[:, None, None]
        cholesky = np.linalg.cholesky(covariance + RIDGE * np.eye(dim))
        if log_total.mean() - previous < TOLERANCE:
            break
        previous = log_total.mean()
    return weights / weights.sum(), means, cholesky


def prior_json(prior: Prior, labels: tuple[str, ...], fitted_on: dict) -> dict:
    """The prior.json document (see vae_runtime.prior)."""
    return {
        "format": FORMAT,
        "format_version": 1,
        "kind": "gmm",
        "latent_dim": int(prior.means.shape[-1]),
        "labels": list(labels),
        "mixtures": [
            {"weights": _float32_lists(w), "means": _float32_lists(m), "cholesky": _float32_lists(c)}
            for w, m, c in zip(prior.weights, prior.means, prior.cholesky, strict=True)
        ],
        "fitted_on": fitted_on,
    }


def _float32_lists(values: np.ndarray) -> list:
    """Nested lists of `values` at float32 precision, each number in its shortest form: the runtime
    samples in float32, and float64's digits would double the file for nothing. Zeros (the Cholesky
    factors' upper triangles, a third of a 16-D prior's numbers) are written as 0, not 0.0."""
    shortest = np.vectorize(lambda v: 0 if v == 0 else float(str(np.float32(v))), otypes=[object])
    return shortest(values).tolist()


def _kmeans(x: np.ndarray, components: int, rng: np.random.Generator, rounds: int = 25) -> np.ndarray:
    centres = x[rng.choice(len(x), components, replace=False)]
    for _ in range(rounds):
        nearest = ((x[:, None] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        centres = np.stack(
            [x[nearest == k].mean(axis=0) if (nearest == k).any() else centres[k] for k in range(components)]
        )
    return centres


def _log_gaussians(x: np.ndarray, means: np.ndarray, cholesky: np.ndarray) -> np.ndarray:
    """log N(x | mean_k, L_k L_k^T) for every row and component: (n, K)."""
    inverse = np.linalg.inv(cholesky)  # (K, d, d), lower-triangular
    whitened = (x[None] - means[:, None]) @ inverse.transpose(0, 2, 1)
    log_det = np.log(np.diagonal(cholesky, axis1=1, axis2=2)).sum(axis=1)
    dim = x.shape[1]
    return (-0.5 * (whitened**2).sum(axis=2) - log_det[:, None] - 0.5 * dim * np.log(2 * np.pi)).T
