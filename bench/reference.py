"""The seed's reference CVAE training loop: the keras.io VAE example plus label concatenation.

Kept apart from vae_train on purpose: it is the baseline that `vae-train` is timed against
(batch 128, Adam 1e-3, arrays straight into `fit`, no schedule, no warm-up, no validation).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

LATENT_DIM = 2


class Sampling(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def _encoder() -> keras.Model:
    image, label = keras.Input((28, 28, 1)), keras.Input((10,))
    x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(image)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Dense(16, activation="relu")(layers.Flatten()(x))
    x = layers.Concatenate()([x, label])
    z_mean, z_log_var = layers.Dense(LATENT_DIM)(x), layers.Dense(LATENT_DIM)(x)
    return keras.Model([image, label], [z_mean, z_log_var, Sampling()([z_mean, z_log_var])])


def _decoder() -> keras.Model:
    z, label = keras.Input((LATENT_DIM,)), keras.Input((10,))
    x = layers.Dense(7 * 7 * 64, activation="relu")(layers.Concatenate()([z, label]))
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    return keras.Model([z, label], layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same")(x))


class ReferenceCVAE(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = _encoder(), _decoder()
        self.trackers = [keras.metrics.Mean(name=n) for n in ("total_loss", "reconstruction_loss", "kl_loss")]

    @property
    def metrics(self):
        return self.trackers

    def loss_terms(self, data):
        images, labels = keras.utils.unpack_x_y_sample_weight(data)[0]
        z_mean, z_log_var, z = self.encoder([images, labels])
        reconstruction = self.decoder([z, labels])
        reconstruction_loss = ops.mean(
            ops.sum(keras.losses.binary_crossentropy(images, reconstruction), axis=(1, 2))
        )
        kl = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
        kl_loss = ops.mean(ops.sum(kl, axis=1))
        return reconstruction_loss + kl_loss, reconstruction_loss, kl_loss

    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses = self.loss_terms(data)
        grads = tape.gradient(losses[0], self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
        return self._record(losses)

    def test_step(self, data):
        return self._record(self.loss_terms(data))

    def _record(self, losses):
        for tracker, value in zip(self.trackers, losses, strict=True):
            tracker.update_state(value)
        return {t.name: t.result() for t in self.trackers}


def reference_model(seed: int = 0) -> ReferenceCVAE:
    keras.utils.set_random_seed(seed)
    model = ReferenceCVAE()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def reference_inputs(images: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    return [(images.astype("float32") / 255.0)[..., None], np.eye(10, dtype="float32")[labels]]
