"""MNIST for training: a local file, or the Keras download (checked against its sha256), as tf.data
pipelines."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from vae_runtime.mnist import KERAS_SOURCE, Mnist, load_mnist_anywhere

NUM_CLASSES = 10


def load_mnist(path: str | None = None) -> Mnist:
    """MNIST from `path` (a Keras mnist.npz or a directory of IDX files), else Keras's cache file, else
    downloaded into that cache and checked against its sha256 (vae_runtime.mnist)."""
    return load_mnist_anywhere(None if path == KERAS_SOURCE else path)


def to_inputs(images: np.ndarray, labels: np.ndarray, conditional: bool):
    """uint8 images and integer labels -> what the model's train_step takes."""
    pixels = (images.astype("float32") / 255.0)[..., None]
    if not conditional:
        return pixels
    return pixels, keras.utils.to_categorical(labels, NUM_CLASSES).astype("float32")


def examples(images: np.ndarray, labels: np.ndarray, conditional: bool) -> tf.data.Dataset:
    """The digits as model inputs, one by one: made once, the start of every epoch's pipeline.

    Example:
        >>> batches(examples(mnist.x_train, mnist.y_train, conditional=True), 128, shuffle_seed=0)
    """
    return tf.data.Dataset.from_tensor_slices(to_inputs(images, labels, conditional))


def batches(digits: tf.data.Dataset, batch_size: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """`digits` batched and prefetched; shuffled in the order `shuffle_seed` sets, when given."""
    if shuffle_seed is not None:
        digits = digits.shuffle(digits.cardinality(), seed=shuffle_seed)
    return digits.batch(batch_size).prefetch(tf.data.AUTOTUNE)
