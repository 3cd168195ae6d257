"""A run's hyper-parameters: `TrainConfig`, checked against the limits of vae_train.limits."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from vae_runtime.errors import VaeDigitsError
from vae_train.data import NUM_CLASSES
from vae_train.distribute import STRATEGIES
from vae_train.limits import LIMITS, option
from vae_train.models import DECODERS, LIKELIHOODS, Architecture, build_model

RESUMABLE_CHANGES = ("epochs", "data", "keep_checkpoints", "tensorboard", "strategy")
LR_SCHEDULES = ("constant", "cosine")
COSINE_FLOOR = 0.01  # the cosine schedule's last learning rate, as a share of --learning-rate


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of a run; the defaults are the seed design's, the upper bounds of those that
    size the model are vae_train.limits.LIMITS."""

    model: str = "cvae"
    epochs: int = 30
    batch_size: int = 128
    latent_dim: int = 2
    learning_rate: float = 1e-3
    beta: float = 1.0
    final_kernel: int = 3
    filters: tuple[int, int] = (32, 64)
    dense_units: int = 16
    seed: int = 0
    data: str | None = None
    keep_checkpoints: int = 3
    tensorboard: bool = False
    strategy: str = "auto"
    mixed_precision: bool = False
    decoder: str = "transposed"
    likelihood: str = "bernoulli"
    lr_schedule: str = "constant"
    kl_warmup: int = 0  # epochs

    def __post_init__(self) -> None:
        if self.model not in ("vae", "cvae"):
            raise VaeDigitsError(f"--model must be vae or cvae, not {self.model!r}")
        object.__setattr__(self, "filters", tuple(self.filters))  # JSON gives a list
        if self.epochs <= 0:
            raise VaeDigitsError("--epochs must be a positive integer")
        for name in ("batch_size", "latent_dim", "final_kernel", "dense_units"):
            if not 0 < getattr(self, name) <= LIMITS[name]:
                raise VaeDigitsError(f"{option(name)} must be an integer in 1-{LIMITS[name]}")
        if len(self.filters) != 2 or not all(
            isinstance(f, int) and 0 < f <= LIMITS["filters"] for f in self.filters
        ):
            raise VaeDigitsError(f"--filters must be two integers in 1-{LIMITS['filters']}")
        for name, allowed in (
            ("decoder", DECODERS),
            ("likelihood", LIKELIHOODS),
            ("lr_schedule", LR_SCHEDULES),
        ):
            if getattr(self, name) not in allowed:
                raise VaeDigitsError(
                    f"{option(name)} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}"
                )
        if not 0 <= self.kl_warmup <= self.epochs:
            raise VaeDigitsError("--kl-warmup must be an integer in 0-EPOCHS (epochs of the warm-up)")
        if self.strategy not in STRATEGIES:
            raise VaeDigitsError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if not self.learning_rate > 0 or not self.beta >= 0:
            raise VaeDigitsError("--learning-rate must be > 0 and --beta must be >= 0")

    @property
    def architecture(self) -> Architecture:
        num_classes = NUM_CLASSES if self.model == "cvae" else None
        return Architecture(
            self.latent_dim,
            num_classes,
            self.filters,
            self.dense_units,
            final_kernel=self.final_kernel,
            decoder=self.decoder,
        )

    def build_model(self, steps_per_epoch: int) -> keras.Model:
        """A fresh model of this run's architecture and losses (untrained, uncompiled)."""
        return build_model(
            self.architecture,
            beta=self.beta,
            seed=self.seed,
            likelihood=self.likelihood,
            kl_warmup_steps=self.kl_warmup * steps_per_epoch,
        )

    def learning_rate_at(self, steps_per_epoch: int) -> float | keras.optimizers.schedules.CosineDecay:
        """Adam's learning rate: constant, or a cosine decay over the whole run to 1 % of it."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        return keras.optimizers.schedules.CosineDecay(
            self.learning_rate, decay_steps=self.epochs * steps_per_epoch, alpha=COSINE_FLOOR
        )
