"""The ELBO terms of a bundle on real digits, computed through the runtime (no TensorFlow).

The definitions are training's: reconstruction = binary cross-entropy summed over the pixels
(outputs clipped to [1e-7, 1 - 1e-7] as Keras does), KL = -1/2 sum(1 + log s^2 - m^2 - s^2) over the
latent dimensions, total = reconstruction + KL; each a mean over digits, in nats.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vae_runtime.errors import DataError
from vae_runtime.generator import Generator
from vae_runtime.mnist import Mnist

EPSILON = 1e-7
DIGIT_LABELS = tuple(str(digit) for digit in range(10))  # MNIST's, in index order


def bce_sum(targets: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Per digit: binary cross-entropy summed over its pixels; float arrays (N, 28, 28)."""
    outputs = np.clip(outputs.astype(np.float64), EPSILON, 1 - EPSILON)
    targets = targets.astype(np.float64)
    per_pixel = -(targets * np.log(outputs) + (1 - targets) * np.log(1 - outputs))
    per_digit: np.ndarray = per_pixel.reshape(len(targets), -1).sum(axis=1)
    return per_digit


def kl_divergence(z_mean: np.ndarray, z_log_var: np.ndarray) -> np.ndarray:
    """Per digit: KL(N(m, s^2) || N(0, I)) summed over the latent dimensions."""
    z_mean, z_log_var = z_mean.astype(np.float64), z_log_var.astype(np.float64)
    per_digit: np.ndarray = (-0.5 * (1 + z_log_var - z_mean**2 - np.exp(z_log_var))).sum(axis=1)
    return per_digit


def elbo_terms(
    g: Generator, images: np.ndarray, labels: np.ndarray | None, seed: int = 0, beta: float = 1.0
) -> dict[str, float]:
    """Mean reconstruction, KL and total loss (nats per digit) of uint8 digits (N, 28, 28)."""
    condition = labels if g.manifest.conditional else None
    z_mean, z_log_var = g.encode(images, condition)
    noise = np.random.default_rng(seed).standard_normal(z_mean.shape, dtype=np.float32)
    reconstructions = g.decode(z_mean + np.exp(0.5 * z_log_var) * noise, condition)
    reconstruction = float(bce_sum(images / 255.0, reconstructions).mean())
    kl = float(kl_divergence(z_mean, z_log_var).mean())
    return {
        "reconstruction_loss": reconstruction,
        "kl_loss": kl,
        "total_loss": reconstruction + beta * kl,  # what training minimised (beta from the manifest)
        "elbo_loss": reconstruction + kl,  # the negative ELBO, whatever beta was
        "digits": len(images),
    }


CLASSIFIER = "classifier.onnx"
CLASSIFIER_TFLITE = "classifier.tflite"  # its twin (scripts/classifier_tflite.py), for TFLite-only installs


def find_classifier(bundle: Path) -> Path:
    """The classifier beside `bundle` (as `vae-train classifier` leaves it), else the embedded one: the
    ONNX file where onnxruntime is installed, else the TFLite one."""
    from vae_runtime.backends import available
    from vae_runtime.bundle import embedded_bundle

    name = CLASSIFIER if available("onnx") else CLASSIFIER_TFLITE
    beside = Path(bundle).parent / name
    return beside if beside.is_file() else embedded_bundle().parent / name


class Judge:
    """The MNIST classifier trained by `vae-train classifier`: an ONNX file, or its TFLite twin."""

    def __init__(self, path: Path):
        from vae_runtime.backends import open_model
        from vae_runtime.errors import BundleError

        if not Path(path).is_file():
            raise BundleError(
                f"no classifier at {path}; train one with `vae-train classifier` and pass --classifier"
            )
        self.model = open_model(Path(path), "tflite" if Path(path).suffix == ".tflite" else "onnx")
        if set(self.model.output_names) != {"features", "probabilities"}:
            raise BundleError(f"{path} is not a vae-digits classifier (outputs features, probabilities)")

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 digits (N, 28, 28) -> (features (N, 128), predicted labels (N,))."""
        pixels = (images.astype(np.float32) / 255.0)[..., None]
        parts = [self.model.run({"image": pixels[i : i + 1024]}) for i in range(0, len(pixels), 1024)]
        features = np.concatenate([p["features"] for p in parts])
        predicted = np.concatenate([p["probabilities"] for p in parts]).argmax(axis=1)
        return features, predicted


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples)."""
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    # Tr sqrt(A B) = Tr sqrt(A^1/2 B A^1/2), whose eigenvalues are real and non-negative
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance between distinct rows: how varied a set of digits is."""
    squared = (features**2).sum(axis=1)
    distances = np.sqrt(np.clip(squared[:, None] + squared[None] - 2 * features @ features.T, 0, None))
    count = len(features)
    return float(distances.sum() / (count * (count - 1)))


def generation_quality(
    g: Generator,
    judge: Judge,
    real_images: np.ndarray,
    real_labels: np.ndarray,
    per_label: int = 1000,
    seed: int = 0,
    temperature: float = 1.0,
    progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """For a CVAE: per-label accuracy of generated digits, Frechet distance to the real ones in the
    classifier's feature space, and in-label diversity (generated and real).

    `progress` is called num_classes + 2 times: after generating, after judging each label, at the end.
    """
    tick = progress or (lambda: None)
    label_ids = np.arange(g.manifest.num_classes)
    generated = g.generate(label_ids, count=per_label, seed=seed, temperature=temperature)
    tick()
    quality = digit_quality(
        judge, generated, np.repeat(label_ids, per_label), real_images, real_labels, g.manifest.labels, tick
    )
    return quality | {"generated_per_label": per_label, "temperature": temperature}


def real_quality(
    judge: Judge,
    mnist: Mnist,
    per_label: int = 1000,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The floor every generator is measured against: `per_label` real training digits of each label
    (drawn with `seed`), scored as generated digits are, against the test digits.

    `progress` is called 12 times, as generation_quality's is for MNIST.
    """
    tick = progress or (lambda: None)
    rng = np.random.default_rng(seed)
    label_ids = np.arange(len(DIGIT_LABELS))
    fewest = min(label_ids, key=lambda i: int((mnist.y_train == i).sum()))
    if per_label > (mnist.y_train == fewest).sum():
        raise DataError(
            f"--per-label {per_label} is more than the {(mnist.y_train == fewest).sum()} training digits "
            f"of label {fewest} in {mnist.provenance['name']}"
        )
    chosen = [rng.choice(np.flatnonzero(mnist.y_train == i), per_label, replace=False) for i in label_ids]
    tick()
    picked = np.concatenate(chosen)
    quality = digit_quality(
        judge, mnist.x_train[picked], mnist.y_train[picked], mnist.x_test, mnist.y_test, DIGIT_LABELS, tick
    )
    return quality | {"real_per_label": per_label}


def digit_quality(
    judge: Judge,
    images: np.ndarray,
    wanted: np.ndarray,
    real_images: np.ndarray,
    real_labels: np.ndarray,
    labels: tuple[str, ...],
    tick: Callable[[], None],
) -> dict[str, Any]:
    """How well digits `images` drawn for labels `wanted` obey them and resemble the real digits: accuracy
    by label, Frechet distance in the classifier's feature space, in-label diversity against the real
    digits'. `tick` is called once per label and once at the end."""
    label_ids = np.arange(len(labels))
    judged = []
    for i in label_ids:
        judged.append(judge(images[wanted == i]))
        tick()
    wanted = np.sort(wanted)  # the order of the judged digits: label by label
    fake_features = np.concatenate([features for features, _ in judged])
    predicted = np.concatenate([predictions for _, predictions in judged])
    real_features, _ = judge(real_images)
    tick()
    sample = 200
    accuracy_by_label = {labels[i]: float((predicted[wanted == i] == i).mean()) for i in label_ids}
    diversity_generated = float(
        np.mean([mean_pairwise_distance(fake_features[wanted == i][:sample]) for i in label_ids])
    )
    diversity_real = float(
        np.mean([mean_pairwise_distance(real_features[real_labels == i][:sample]) for i in label_ids])
    )
    return {
        "accuracy_by_label": accuracy_by_label,
        "accuracy": float((predicted == wanted).mean()),
        "worst_label_accuracy": min(accuracy_by_label.values()),
        "frechet_distance": frechet_distance(fake_features, real_features),
        "diversity_generated": diversity_generated,
        "diversity_real": diversity_real,
        "diversity_ratio": diversity_generated / diversity_real,
    }
