"""The VAE and the conditional VAE: a Sampling layer, encoder/decoder builders and two models.

Follows the keras.io VAE example: the encoder and decoder are functional models built outside
the model class; the model owns the losses in a custom `train_step` under `tf.GradientTape`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras
import tensorflow as tf
from keras import layers, ops

IMAGE_SHAPE = (28, 28, 1)
PACKAGE = "vae_digits"
DECODERS = ("transposed", "upsample")
LIKELIHOODS = ("bernoulli", "gaussian")
MIN_VARIANCE = 1e-6  # of the Gaussian likelihood: a floor, so that a perfect batch costs no infinity


@dataclass(frozen=True)
class Architecture:
    """The hyper-parameters that shape the networks (defaults: the seed design)."""

    latent_dim: int = 2
    num_classes: int | None = None  # None: a plain VAE; an int: a CVAE over that many labels
    filters: tuple[int, int] = (32, 64)
    dense_units: int = 16
    final_kernel: int = 3
    decoder: str = "transposed"  # or "upsample": nearest-neighbour upsampling + convolution

    def to_dict(self) -> dict:
        return asdict(self)


REPLICA_SEED_STRIDE = 2_654_435_761  # far apart, so no two replicas' seeds meet


@keras.saving.register_keras_serializable(package=PACKAGE)
class Sampling(layers.Layer):
    """z = z_mean + exp(0.5 * z_log_var) * epsilon, with epsilon ~ N(0, I).

    Under tf.distribute every replica draws its own noise (the replica id is folded into the seed),
    reproducibly for a seed; replica 0, and so a single device, draws what it always drew.
    """

    noise_scale = 1.0  # tests set 0 to compare strategies step for step, the noise held equal

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        # keras.random.normal's own draw, with this replica's seed (it takes no seed tensor)
        seed = tf.cast(tf.math.floormod(self._replica_seed(), tf.int32.max - 1), tf.int32)
        epsilon = tf.random.stateless_normal(tf.shape(z_mean), seed=seed, dtype=z_mean.dtype)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon * self.noise_scale

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def _replica_seed(self):
        seed = self.seed_generator.next()  # [seed, step counter]: the generator's state is per model
        replica = tf.distribute.get_replica_context()
        if replica is None:
            return seed
        offset = tf.cast(replica.replica_id_in_sync_group, seed.dtype) * REPLICA_SEED_STRIDE
        return seed + tf.stack([offset, tf.zeros_like(offset)])

    def save_own_variables(self, store) -> None:
        # Keras saves no random state; a checkpoint keeps it so that a resumed run draws on where it was
        store["seed_generator_state"] = self.seed_generator.state

    def load_own_variables(self, store) -> None:
        if "seed_generator_state" in store:
            self.seed_generator.state.assign(store["seed_generator_state"])

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


def build_encoder(arch: Architecture, seed: int | None = None) -> keras.Model:
    """image (+ one-hot label) -> [z_mean, z_log_var, z]."""
    image = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = layers.Conv2D(arch.filters[0], 3, strides=2, padding="same", activation="relu")(image)
    x = layers.Conv2D(arch.filters[1], 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(arch.dense_units, activation="relu")(x)
    inputs = [image]
    if arch.num_classes:
        label = keras.Input(shape=(arch.num_classes,), name="label")
        x = layers.Concatenate()([x, label])
        inputs.append(label)
    z_mean = layers.Dense(arch.latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(arch.latent_dim, name="z_log_var")(x)
    z = Sampling(seed=seed, name="z")([z_mean, z_log_var])
    return keras.Model(inputs, [z_mean, z_log_var, z], name="encoder")


def build_decoder(arch: Architecture) -> keras.Model:
    """z (+ one-hot label) -> image in [0, 1]."""
    z = keras.Input(shape=(arch.latent_dim,), name="z")
    inputs = [z]
    x = z
    if arch.num_classes:
        label = keras.Input(shape=(arch.num_classes,), name="label")
        x = layers.Concatenate()([z, label])
        inputs.append(label)
    x = layers.Dense(7 * 7 * arch.filters[1], activation="relu")(x)
    x = layers.Reshape((7, 7, arch.filters[1]))(x)
    x = _upsample_convolutions(x, arch) if arch.decoder == "upsample" else _transposed_convolutions(x, arch)
    last = layers.Conv2D if arch.decoder == "upsample" else layers.Conv2DTranspose
    # float32 also under mixed precision: the sigmoid's output feeds the loss
    image = last(1, arch.final_kernel, padding="same", activation="sigmoid", dtype="float32", name="image")(x)
    return keras.Model(inputs, image, name="decoder")


def _transposed_convolutions(x, arch: Architecture):
    """7x7 -> 28x28 by two stride-2 transposed convolutions (the seed design)."""
    x = layers.Conv2DTranspose(arch.filters[1], 3, strides=2, padding="same", activation="relu")(x)
    return layers.Conv2DTranspose(arch.filters[0], 3, strides=2, padding="same", activation="relu")(x)


def _upsample_convolutions(x, arch: Architecture):
    """7x7 -> 28x28 by a convolution at each resolution, nearest-neighbour upsampling between them: the
    same multiply-adds as the transposed layers, no checkerboard, and no int32 scratch of a transposed
    convolution's output on a microcontroller (TensorFlow Lite Micro's RESIZE_NEAREST_NEIGHBOR + CONV_2D)."""
    x = layers.Conv2D(arch.filters[1], 3, padding="same", activation="relu")(x)
    x = layers.Resizing(14, 14, interpolation="nearest")(x)
    x = layers.Conv2D(arch.filters[0], 3, padding="same", activation="relu")(x)
    return layers.Resizing(28, 28, interpolation="nearest")(x)


@keras.saving.register_keras_serializable(package=PACKAGE)
class VAE(keras.Model):
    """Variational autoencoder; `beta` weighs the KL term (beta-VAE).

    `likelihood` "bernoulli" scores a reconstruction by binary cross-entropy; "gaussian" by a Gaussian
    of one variance shared by all pixels, learned: each batch's maximum-likelihood variance, its mean
    squared error (the optimal sigma-VAE, Rybkin et al. 2021), which balances reconstruction and KL by
    itself. `kl_warmup_steps` ramps the KL weight linearly from 0 to `beta` over the first training steps.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        beta: float = 1.0,
        likelihood: str = "bernoulli",
        kl_warmup_steps: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.beta = beta
        self.likelihood = likelihood
        self.kl_warmup_steps = kl_warmup_steps
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        # its encoder and decoder are built: so fit skips a symbolic build (which fails on the CVAE's
        # (pixels, labels) input) and loading a .keras file restores the optimizer's state too
        self.built = True

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def split(self, data) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """A batch -> (the images to reconstruct, the extra network inputs)."""
        return data, []

    def call(self, data, training: bool = False):
        images, condition = self.split(data)
        z_mean, z_log_var, z = self.encoder([images, *condition], training=training)
        return z_mean, z_log_var, self.decoder([z, *condition], training=training)

    def compute_losses(
        self, data, training: bool, kl_weight: float | tf.Tensor = 1.0
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Per digit: total, reconstruction and KL loss (vectors, so any split of a batch adds up);
        `kl_weight` scales beta (the warm-up)."""
        images, _ = self.split(data)
        z_mean, z_log_var, reconstruction = self(data, training=training)
        z_mean, z_log_var = ops.cast(z_mean, "float32"), ops.cast(z_log_var, "float32")  # mixed precision
        reconstruction_loss = self.reconstruction_loss(images, reconstruction)
        kl_loss = ops.sum(-0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var)), axis=1)
        return reconstruction_loss + self.beta * kl_weight * kl_loss, reconstruction_loss, kl_loss

    def reconstruction_loss(self, images, reconstruction) -> tf.Tensor:
        """Per digit, in nats: the negative log-likelihood of `images` under the decoder's output."""
        if self.likelihood == "bernoulli":
            return ops.sum(keras.losses.binary_crossentropy(images, reconstruction), axis=(1, 2))
        squared_error = ops.sum(ops.square(images - reconstruction), axis=(1, 2, 3))
        pixels = math.prod(IMAGE_SHAPE)
        # the batch's optimal variance, held fixed for the gradient: its own gradient is zero at the optimum
        variance = ops.stop_gradient(ops.maximum(ops.mean(squared_error) / pixels, MIN_VARIANCE))
        return 0.5 * squared_error / variance + 0.5 * pixels * ops.log(2 * math.pi * variance)

    def kl_weight(self) -> tf.Tensor:
        """The warm-up's share of beta at the current training step: 0 to 1 over `kl_warmup_steps`."""
        if not self.kl_warmup_steps:
            return ops.convert_to_tensor(1.0)
        steps = ops.cast(self.optimizer.iterations, "float32")
        return ops.minimum(1.0, steps / self.kl_warmup_steps)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses = self.compute_losses(data, training=True, kl_weight=self.kl_weight())
            loss = self.optimizer.scale_loss(global_mean(losses[0]))  # scaled under mixed precision
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
        return self.record(losses)

    def test_step(self, data):
        return self.record(self.compute_losses(data, training=False))

    def record(self, losses) -> dict[str, tf.Tensor]:
        for tracker, per_digit in zip(self.metrics, losses, strict=True):
            tracker.update_state(per_digit)  # a mean over digits, exact over replicas and partial batches
        results = {tracker.name: tracker.result() for tracker in self.metrics}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras reduces step results over workers along axis 0, which a scalar lacks
            # (keras-team/keras#20585); the epoch logs stay scalar
            results = {name: ops.reshape(value, (1,)) for name, value in results.items()}
        return results

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras peeks a batch and reduces it over the workers before building symbolically, which
        # fails for a (pixels, labels) batch under multi-worker training. The model is built when made
        # and train/run.py builds the optimizer before fit, so there is nothing to build. A private
        # Keras hook: Keras is pinned, and tests/test_distribute.py fails loudly if an upgrade changes it.
        if self.built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "beta": self.beta,
            "likelihood": self.likelihood,
            "kl_warmup_steps": self.kl_warmup_steps,
        }

    @classmethod
    def from_config(cls, config: dict):
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        return cls(encoder, decoder, **config)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CVAE(VAE):
    """Conditional VAE: batches are (images, one-hot labels); both networks see the label."""

    def split(self, data):
        images, labels = data
        return images, [labels]


def global_mean(per_digit: tf.Tensor) -> tf.Tensor:
    """The mean over the whole global batch: this replica's sum over all replicas' digit count.

    The optimizer sums gradients over replicas, so this gives exactly the single-device gradient,
    also for a last batch split unevenly (a replica may even get no digit).
    """
    count = tf.cast(tf.shape(per_digit)[0], per_digit.dtype)
    replica = tf.distribute.get_replica_context()
    total = replica.all_reduce("SUM", count) if replica is not None else count
    return tf.reduce_sum(per_digit) / total


def build_model(
    arch: Architecture,
    beta: float = 1.0,
    seed: int | None = None,
    likelihood: str = "bernoulli",
    kl_warmup_steps: int = 0,
) -> VAE:
    """The VAE, or the CVAE when `arch.num_classes` is set, with fresh encoder and decoder."""
    model_class = CVAE if arch.num_classes else VAE
    return model_class(
        build_encoder(arch, seed),
        build_decoder(arch),
        beta=beta,
        likelihood=likelihood,
        kl_warmup_steps=kl_warmup_steps,
    )
