"""Parity and speed checks: every exported file is run by the runtime and compared with Keras."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from vae_export.source import TrainedRun
from vae_runtime.backends import Model
from vae_runtime.engine import one_hot
from vae_runtime.errors import WorkError
from vae_runtime.mnist import Mnist

RANDOM_LATENTS = 1000
VARIANT_SAMPLES = 512
CALIBRATION_SAMPLES = 512
TIMING_BATCH = 256
# A quantized variant ships only within these bounds against fp32 (documented in the README).
VARIANT_BOUNDS = {
    "decoder": {"mean_abs_diff": 0.02, "psnr_db": 25.0},
    "encoder": {"mean_abs_diff": 0.1},
}


class ParityError(WorkError):
    """An exported fp32 file does not reproduce the Keras model within the tolerance."""


@dataclass(frozen=True)
class Probe:
    """Inputs by role (real test digits; random and encoded latents) and Keras's outputs on them."""

    feeds: dict[str, dict[str, np.ndarray]]
    expected: dict[str, dict[str, np.ndarray]]

    def head(self, role: str, count: int) -> tuple[dict, dict]:
        """The first `count` samples of a role's feeds and expected outputs."""
        cut = lambda arrays: {k: v[:count] for k, v in arrays.items()}  # noqa: E731
        return cut(self.feeds[role]), cut(self.expected[role])


def make_probe(run: TrainedRun, data: Mnist, seed: int = 0) -> Probe:
    rng = np.random.default_rng(seed)
    images = (data.x_test.astype(np.float32) / 255.0)[..., None]
    encoder_feeds = {"image": images}
    random_z = rng.standard_normal((RANDOM_LATENTS, run.latent_dim), dtype=np.float32)
    if run.conditional:
        encoder_feeds["label"] = one_hot(data.y_test, run.num_classes)
    encoded = _keras(run.encoder, encoder_feeds)
    # Random latents first, so that a short head of the probe still covers the prior.
    decoder_feeds = {"z": np.concatenate([random_z, encoded["z_mean"]])}
    if run.conditional:
        random_labels = rng.integers(0, run.num_classes, RANDOM_LATENTS)
        decoder_feeds["label"] = one_hot(np.concatenate([random_labels, data.y_test]), run.num_classes)
    return Probe(
        feeds={"encoder": encoder_feeds, "decoder": decoder_feeds},
        expected={"encoder": encoded, "decoder": _keras(run.decoder, decoder_feeds)},
    )


def calibration_feeds(run: TrainedRun, data: Mnist, role: str, count: int, seed: int = 1):
    """Representative inputs from the training split, for quantization."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(data.x_train), size=min(count, len(data.x_train)), replace=False)
    feeds = {"image": (data.x_train[pick].astype(np.float32) / 255.0)[..., None]}
    if run.conditional:
        feeds["label"] = one_hot(data.y_train[pick], run.num_classes)
    if role == "encoder":
        return feeds
    encoded = _keras(run.encoder, feeds)
    noise = rng.standard_normal(encoded["z_mean"].shape, dtype=np.float32)
    z = encoded["z_mean"] + np.exp(0.5 * encoded["z_log_var"]) * noise
    return {"z": z, **({"label": feeds["label"]} if run.conditional else {})}


def run_batched(model: Model, feeds: dict[str, np.ndarray], batch: int = 1024) -> dict:
    count = len(next(iter(feeds.values())))
    parts = [model.run({k: v[i : i + batch] for k, v in feeds.items()}) for i in range(0, count, batch)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


class Figures(TypedDict, total=False):
    """What `compare` measures; psnr_db for images only, None where they are identical."""

    max_abs_diff: float
    mean_abs_diff: float
    samples: int
    psnr_db: float | None


def compare(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> Figures:
    """Max and mean absolute difference over all outputs, and PSNR (dB) for images in [0, 1]."""
    diffs = np.concatenate([np.abs(actual[k] - expected[k]).ravel() for k in expected])
    figures: Figures = {
        "max_abs_diff": float(diffs.max()),
        "mean_abs_diff": float(diffs.mean()),
        "samples": len(next(iter(expected.values()))),
    }
    if "image" in expected:
        mse = float(np.mean((actual["image"] - expected["image"]) ** 2))
        figures["psnr_db"] = round(10 * np.log10(1.0 / mse), 2) if mse > 0 else None
    return figures


def check_fp32(model: Model, probe: Probe, role: str, name: str, atol: float) -> dict:
    """Compare an fp32 file with Keras on the whole probe; ParityError past `atol`."""
    figures = compare(run_batched(model, probe.feeds[role]), probe.expected[role])
    if not figures["max_abs_diff"] <= atol:
        raise ParityError(
            f"{name} differs from the Keras {role} by {figures['max_abs_diff']:.3g} "
            f"(> --atol {atol:g}); nothing was written"
        )
    return {"reference": "keras", "atol": atol, **figures}


def check_variant(model: Model, fp32: Model, probe: Probe, role: str) -> tuple[dict, bool]:
    """Compare a quantized file with the fp32 one; also say whether it is within the bounds."""
    feeds, _ = probe.head(role, VARIANT_SAMPLES)
    figures = compare(run_batched(model, feeds), run_batched(fp32, feeds))
    bounds = VARIANT_BOUNDS[role]
    within = figures["mean_abs_diff"] <= bounds["mean_abs_diff"] and (
        "psnr_db" not in bounds or figures["psnr_db"] is None or figures["psnr_db"] >= bounds["psnr_db"]
    )
    return {"reference": "fp32", "bounds": bounds, **figures}, within


def measure_speed(model: Model, probe: Probe, role: str, seconds: float = 0.5) -> dict:
    """Samples per second at batch 256: the best of repeated timed runs within `seconds`."""
    feeds, _ = probe.head(role, TIMING_BATCH)
    model.run(feeds)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        model.run(feeds)
        best = min(best, time.perf_counter() - started)
        if time.perf_counter() > deadline:
            break
    return {"batch": TIMING_BATCH, "per_second": round(TIMING_BATCH / best, 1)}


def _keras(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    outputs = model.predict(feeds, batch_size=1024, verbose=0)
    return {name: np.asarray(value, dtype=np.float32) for name, value in outputs.items()}
