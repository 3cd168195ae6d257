"""The ELBO terms of a bundle on real digits, computed through the runtime (no TensorFlow).

The definitions are training's: reconstruction = binary cross-entropy summed over the pixels
(outputs clipped to [1e-7, 1 - 1e-7] as Keras does), KL = -1/2 sum(1 + log s^2 - m^2 - s^2) over the
latent dimensions, total = reconstruction + KL; each a mean over digits, in nats.
"""

from __future__ import annotations

import numpy as np

from vae_runtime.generator import Generator

EPSILON = 1e-7


def bce_sum(targets: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Per digit: binary cross-entropy summed over its pixels; float arrays (N, 28, 28)."""
    outputs = np.clip(outputs.astype(np.float64), EPSILON, 1 - EPSILON)
    targets = targets.astype(np.float64)
    per_pixel = -(targets * np.log(outputs) + (1 - targets) * np.log(1 - outputs))
    return per_pixel.reshape(len(targets), -1).sum(axis=1)


def kl_divergence(z_mean: np.ndarray, z_log_var: np.ndarray) -> np.ndarray:
    """Per digit: KL(N(m, s^2) || N(0, I)) summed over the latent dimensions."""
    z_mean, z_log_var = z_mean.astype(np.float64), z_log_var.astype(np.float64)
    return (-0.5 * (1 + z_log_var - z_mean**2 - np.exp(z_log_var))).sum(axis=1)


def elbo_terms(
    g: Generator, images: np.ndarray, labels: np.ndarray | None, seed: int = 0, beta: float = 1.0
) -> dict[str, float]:
    """Mean reconstruction, KL and total loss (nats per digit) of uint8 digits (N, 28, 28)."""
    condition = labels if g.info.conditional else None
    z_mean, z_log_var = g.encode(images, condition)
    noise = np.random.default_rng(seed).standard_normal(z_mean.shape, dtype=np.float32)
    reconstructions = g.decode(z_mean + np.exp(0.5 * z_log_var) * noise, condition)
    reconstruction = float(bce_sum(images / 255.0, reconstructions).mean())
    kl = float(kl_divergence(z_mean, z_log_var).mean())
    return {
        "reconstruction_loss": reconstruction,
        "kl_loss": kl,
        "total_loss": reconstruction + beta * kl,
        "digits": len(images),
    }
