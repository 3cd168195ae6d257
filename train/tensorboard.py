"""TensorBoard logs of a run (`vae-train --tensorboard`): per epoch the three losses for train and
validation, and a grid of generated digits from the same latents each epoch, so one watches it learn.

    tensorboard --logdir runs/
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vae_runtime.images import grid

LOGS = "logs"
LOSSES = ("total_loss", "reconstruction_loss", "kl_loss")
STYLES = 8  # columns of the digit grid: fixed latents (one handwriting style each)


class TensorBoardLog(keras.callbacks.Callback):
    """Writes OUT/logs/train and OUT/logs/validation after every epoch."""

    def __init__(self, out: Path, num_classes: int | None, latent_dim: int, seed: int):
        super().__init__()
        root = Path(out) / LOGS
        self.writers = {
            split: tf.summary.create_file_writer(str(root / split)) for split in ("train", "validation")
        }
        z = np.random.default_rng(seed).standard_normal((STYLES, latent_dim), dtype=np.float32)
        rows = num_classes or STYLES  # a row per label (CVAE), else more latents
        if num_classes:
            self.inputs = [np.tile(z, (rows, 1)), np.repeat(np.eye(rows, dtype=np.float32), STYLES, axis=0)]
        else:
            extra = np.random.default_rng(seed + 1).standard_normal(
                (rows * STYLES, latent_dim), dtype=np.float32
            )
            self.inputs = [extra]

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        step = epoch + 1
        for split, prefix in (("train", ""), ("validation", "val_")):
            with self.writers[split].as_default():
                for loss in LOSSES:
                    tf.summary.scalar(loss, float(logs[prefix + loss]), step=step)
        digits = np.asarray(self.model.decoder(self.inputs, training=False))[..., 0]
        picture = grid(np.rint(digits * 255).astype(np.uint8), columns=STYLES, scale=2)
        with self.writers["validation"].as_default():
            tf.summary.image(
                "generated digits (a row per label, a column per z)", picture[None, ..., None], step=step
            )
        for writer in self.writers.values():
            writer.flush()
