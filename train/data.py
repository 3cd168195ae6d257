"""MNIST for training: the Keras download by default or a local file, as tf.data pipelines."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from vae_runtime.errors import DataError
from vae_runtime.mnist import KERAS_SOURCE, Mnist, load_mnist_file

NUM_CLASSES = 10


def load_mnist(path: str | None = None) -> Mnist:
    """MNIST from `path` (a Keras mnist.npz or a directory of IDX files), else Keras's download."""
    if path is not None and path != KERAS_SOURCE:
        return load_mnist_file(path)
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # keras raises bare Exception for fetch failures
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"cannot download MNIST ({reason}); pass --data PATH to a local mnist.npz "
            "or a directory holding the four IDX files"
        ) from None
    return Mnist(x_train, y_train, x_test, y_test, source=KERAS_SOURCE)


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
